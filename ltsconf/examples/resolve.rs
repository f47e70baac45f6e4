//! Resolves an lts.conf / ltsp.conf for one client and prints the result as shell.
//!
//! ```sh
//! cargo run -p netboot-ltsconf --example resolve -- FILE [MAC] [IP] [HOSTNAME]
//! ```
//!
//! Use `-` to leave an identity out. Diagnostics go to stderr; the exit status is 1 when the
//! file has errors (the variables are still printed, from what could be read).

use netboot_ltsconf::{Client, Dialect, normalize_mac, parse, render, resolve};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: resolve FILE [MAC|-] [IP|-] [HOSTNAME|-]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    let arg = |i: usize| args.get(i).map(String::as_str).filter(|s| *s != "-");
    let mac = arg(1).map(|m| normalize_mac(m).unwrap_or_else(|| m.to_string()));
    let client = Client {
        mac: mac.as_deref(),
        ip: arg(2),
        hostname: arg(3),
    };
    let doc = parse(&text, Dialect::detect(&text));
    for d in &doc.diagnostics {
        eprint!("{}", d.render(path, &text));
    }
    let r = resolve(&doc, &client);
    for link in &r.chain {
        eprintln!(
            "# applies: [{}] ({:?})",
            doc.sections[link.section].name.text, link.reason
        );
    }
    let (sh, skipped) = render::shell(&r);
    print!("{sh}");
    for s in skipped {
        eprintln!("skipped: {s}");
    }
    if doc.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
