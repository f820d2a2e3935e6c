use rampart::remote::*;
use std::time::{Duration, Instant};
fn main() {
    let c = SshConnector::new(ConnectOptions { connect_timeout: Duration::from_secs(3), exec_timeout: Duration::from_secs(30), accept_new_host_keys: false });
    let t = Target { name: "probe".into(), address: "198.19.252.2".into(), port: 22, user: "root".into(), identity_file: Some("/srv/rpprobe/id".into()), known_hosts: "/srv/rpprobe/known_hosts".into(), become_: false, password: None };
    let t0 = Instant::now();
    let mut conn = match c.connect(&t) { Ok(c) => c, Err(e) => { println!("connect error: {e}"); return; } };
    println!("connect {:?}", t0.elapsed());
    let t1 = Instant::now();
    let out = conn.run(&rampart::remote::facts::read_script(&[])).expect("run");
    println!("run {:?} status {}", t1.elapsed(), out.status);
    let f = rampart::remote::facts::Facts::parse(&out.stdout);
    println!("{f:?}");
    let mut t2 = t.clone(); t2.known_hosts = "/srv/rpprobe/kh_wrong".into();
    match c.connect(&t2) { Ok(_) => println!("UNEXPECTED ok"), Err(e) => println!("expected: {e}") }
}
