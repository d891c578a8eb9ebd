//! Developer aid: runs the claims whose id contains any argument, concurrently, and prints
//! each outcome in full (checks and evidence). `cargo run -p netclaim-suites --example
//! run_claim -- syn.retries-1`.

fn main() {
    let filters: Vec<String> = std::env::args().skip(1).collect();
    let claims = match netclaim_suites::catalog::select(&filters) {
        Ok(c) => c,
        Err(unknown) => {
            eprintln!("unknown claim filter(s): {}", unknown.join(", "));
            std::process::exit(2);
        }
    };
    let ctx = netclaim_suites::Ctx::detect();
    // Every claim at once, each under the rules `netclaim run` uses (its own thread, a
    // panic or a harness failure is `error`, a hard deadline).
    let running: Vec<_> = claims
        .iter()
        .map(|c| {
            let (tx, rx) = std::sync::mpsc::channel();
            let (claim, ctx) = (*c, ctx.clone());
            std::thread::spawn(move || {
                let _ = tx.send(netclaim_suites::executor::run_one(&claim, &ctx));
            });
            (c, rx)
        })
        .collect();
    for (c, rx) in running {
        let Ok((o, took)) = rx.recv() else {
            eprintln!("{}: no outcome (its runner thread ended without one)", c.id);
            continue;
        };
        println!(
            "=== {} [{}] in {:.2} s: {}",
            c.id,
            o.verdict(),
            took.as_secs_f64(),
            o.reason()
        );
        println!("claimed:  {}", o.claimed.summary());
        println!("expected: {}", o.expected.summary());
        println!("observed: {}", o.observed.summary());
        for k in &o.claim_checks {
            println!("  statement {k}");
        }
        for k in &o.model_checks {
            println!("  model     {k}");
        }
        for e in &o.evidence {
            println!("  evidence:\n    {}", e.replace('\n', "\n    "));
        }
    }
}
