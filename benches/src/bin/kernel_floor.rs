//! The kernel floor on its own: the sending thread's CPU per datagram for the traffic a
//! meeting of N participants (everyone publishes audio and video, everyone receives everyone
//! else) or a livestream to N subscribers makes its server send, with `sendto`, `sendmmsg` and
//! UDP GSO. The load benches measure it in the same run as the servers.
//!
//! cargo run --release -p tern-benches --bin kernel_floor -- meeting 25
//! cargo run --release -p tern-benches --bin kernel_floor -- live 500

use tern_benches::kernel_floor::{Traffic, floor, measure};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().map_or("meeting", String::as_str);
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(25);
    let traffic = match scenario {
        "live" => Traffic::livestream(n),
        _ => Traffic::meeting(n),
    };
    println!(
        "{scenario} {n}: {traffic:?}, {:.0} datagrams/s",
        traffic.rate()
    );
    println!("| method | ns per datagram | sent | received |");
    println!("|---|---|---|---|");
    let costs = measure(traffic, 5.0);
    for c in &costs {
        println!(
            "| {:?} | {:.0} | {} | {} |",
            c.method, c.ns_per_datagram, c.sent, c.received
        );
    }
    match floor(&costs) {
        Some(f) => println!(
            "floor: {:.0} ns per datagram ({:?})",
            f.ns_per_datagram, f.method
        ),
        None => println!("floor: none (every method lost datagrams)"),
    }
}
