//! A peer process for the SIGKILL tests (run under `ip netns exec`):
//!
//! - `strand-faults-peer serve <ws|quic> <ip>`: serves the fault service,
//!   prints `listening <addr>`, and runs until killed;
//! - `strand-faults-peer call <ws|quic> <addr>`: starts one waiting call of
//!   every kind, prints `calling <n>`, and runs until killed.

use std::time::Duration;

use strand_faults::{connect, serve, service, Carrier, Timeouts};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let carrier = match args.get(1).map(String::as_str) {
        Some("ws") => Carrier::Ws,
        Some("quic") => Carrier::Quic,
        other => panic!("carrier ws or quic, not {other:?}"),
    };
    let target = args.get(2).expect("an address");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        match args[0].as_str() {
            "serve" => {
                let served = serve(carrier, target.parse().expect("ip"), Timeouts::short()).await;
                println!("listening {}", served.addr);
            }
            "call" => {
                let client =
                    connect(carrier, target.parse().expect("addr"), Timeouts::short()).await;
                let calls = service::start_hanging(&client).await.expect("calls");
                println!("calling {}", calls.len());
                std::mem::forget(calls);
                std::mem::forget(client);
            }
            other => panic!("serve or call, not {other}"),
        }
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}
