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
    std::thread::scope(|s| {
        let handles: Vec<_> = claims
            .iter()
            .map(|c| {
                let ctx = &ctx;
                s.spawn(move || {
                    let start = std::time::Instant::now();
                    (c, c.execute(ctx), start.elapsed())
                })
            })
            .collect();
        for h in handles {
            let (c, o, took) = h.join().expect("claim thread panicked");
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
    });
}
