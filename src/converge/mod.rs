//! placeholder
pub fn cli(args: crate::cli::RunArgs, audit: bool) -> crate::error::Result<u8> {
    let _ = (args, audit);
    todo!("engine")
}
