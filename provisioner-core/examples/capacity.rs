//! Policy capacity: how many realistic data planes a user can hold and still get a
//! scoped session, with the inline policy alone and with managed session policies.
//!
//! Run: `cargo run -p provisioner-core --example capacity [-- --max N] [--glue K] [--dump N]`
//! (`--dump N` prints the inline-only document for N planes instead of the table).
//!
//! Realistic means the platform's defaults (the seven platform folders and Bedrock), a
//! bucket like `acme-datalake-prod`, prefixes like `marketing/curated/` and Glue
//! databases like `marketing_curated`: plane `dp-D` holds `s3://acme-datalake-prod/D/curated/`,
//! `s3://acme-datalake-prod/D/raw/` and the databases `D_curated`, `D_raw` (the first
//! K of them with `--glue K`, default 2). Everything is computed by the same decision
//! code a launch runs (`decision::resolve`); nothing is sent anywhere.

use provisioner_core::context::{Flow, LaunchContext};
use provisioner_core::decision::{Tier, resolve};
use provisioner_core::load::load_str;
use provisioner_core::policy::{MAX_MANAGED_POLICY_CHARS, MAX_POLICY_ARNS, MAX_POLICY_CHARS};

/// Forty business domains, as a data platform names its planes.
pub const DOMAINS: &[&str] = &[
    "marketing",
    "finance",
    "sales",
    "supply-chain",
    "customer-care",
    "risk",
    "hr",
    "procurement",
    "logistics",
    "pricing",
    "fraud",
    "payments",
    "treasury",
    "legal",
    "compliance",
    "audit",
    "product",
    "growth",
    "crm",
    "ecommerce",
    "retail",
    "wholesale",
    "inventory",
    "manufacturing",
    "quality",
    "research",
    "clinical",
    "security",
    "it-ops",
    "facilities",
    "real-estate",
    "tax",
    "investor-relations",
    "partnerships",
    "loyalty",
    "media",
    "content",
    "support",
    "billing",
    "forecasting",
];

fn platform_json(planes: usize, glue: usize, managed: &str) -> String {
    let dps: Vec<String> = DOMAINS[..planes]
        .iter()
        .map(|d| {
            let db = d.replace('-', "_");
            let dbs: Vec<String> = ["curated", "raw"][..glue]
                .iter()
                .map(|z| format!("\"{db}_{z}\""))
                .collect();
            format!(
                r#"{{"id": "dp-{d}", "s3": ["s3://acme-datalake-prod/{d}/curated/", "s3://acme-datalake-prod/{d}/raw/"], "glue_databases": [{}]}}"#,
                dbs.join(",")
            )
        })
        .collect();
    let ids: Vec<String> = DOMAINS[..planes]
        .iter()
        .map(|d| format!("\"dp-{d}\""))
        .collect();
    format!(
        r#"{{"settings": {{"syntasa_session_policy_enabled": "true", "session_policy_managed": "{managed}"}},
            "aws": {{"region": "us-east-1", "account_id": "123456789012",
                     "session_policy_role_arn": "arn:aws:iam::123456789012:role/PlatformInfraRole",
                     "platform_bucket": "acme-platform"}},
            "workspaces": [{{"id": "ws-marketing"}}],
            "data_planes": [{}],
            "users": [{{"id": "alice.smith", "data_planes": [{}]}}]}}"#,
        dps.join(","),
        ids.join(",")
    )
}

struct Row {
    tier: Tier,
    inline_chars: usize,
    plaintext_chars: usize,
    arns: usize,
    largest_managed: usize,
}

fn measure(planes: usize, glue: usize, managed: &str) -> Result<Row, String> {
    let platform = load_str(
        &platform_json(planes, glue, managed),
        "capacity",
        &|_: &str| None,
    )
    .map_err(|e| e.to_string())?;
    let ctx = LaunchContext {
        flow: Flow::Notebook,
        user: "alice.smith".into(),
        workspace: Some("ws-marketing".into()),
        runtime_template: None,
        job_id: None,
    };
    let d = resolve(&platform, &ctx, &[]);
    let (inline_chars, plaintext_chars, arns, largest_managed) = match d.assume_role() {
        Some(a) => {
            let inline = a.policy.as_ref().map_or(0, |p| p.chars());
            let arn_chars: usize = a.policy_arns.iter().map(String::len).sum();
            let largest = a.managed_policies.iter().map(|m| m.chars()).max();
            (
                inline,
                inline + arn_chars,
                a.policy_arns.len(),
                largest.unwrap_or(0),
            )
        }
        None => {
            // Over the limit: report what the inline policy would have been.
            let over = d
                .skipped
                .last()
                .map(|s| s.detail.clone())
                .unwrap_or_default();
            let chars = over
                .split_whitespace()
                .find_map(|w| w.parse::<usize>().ok())
                .unwrap_or(0);
            (chars, chars, 0, 0)
        }
    };
    Ok(Row {
        tier: d.tier,
        inline_chars,
        plaintext_chars,
        arns,
        largest_managed,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let max = flag("--max", DOMAINS.len()).clamp(1, DOMAINS.len());
    let glue = flag("--glue", 2).min(2);
    if let Some(n) = args
        .iter()
        .position(|a| a == "--dump")
        .map(|_| flag("--dump", 1))
    {
        let n = n.clamp(1, DOMAINS.len());
        let doc = load_str(&platform_json(n, glue, "never"), "capacity", &|_: &str| {
            None
        })
        .map(|p| {
            let user = &p.users["alice.smith"];
            provisioner_core::policy::build(
                &provisioner_core::policy::SessionInput::new(&p, user, Vec::new()).inline_only(),
            )
        });
        match doc {
            Ok(d) => println!("{}", d.json()),
            Err(e) => eprintln!("capacity: {e}"),
        }
        return;
    }
    println!(
        "Realistic planes (2 S3 locations, {glue} Glue database(s) each), platform defaults (7 folders, Bedrock)."
    );
    println!();
    println!(
        "| planes | inline only: chars of {MAX_POLICY_CHARS} | inline only: tier | managed: tier | managed: inline + ARN chars of {MAX_POLICY_CHARS} | managed: ARNs of {MAX_POLICY_ARNS} | managed: largest document of {MAX_MANAGED_POLICY_CHARS} |"
    );
    println!("|---:|---:|---|---|---:|---:|---:|");
    let (mut fit_inline, mut fit_managed) = (0, 0);
    for n in 1..=max {
        let (inline, managed) = match (measure(n, glue, "never"), measure(n, glue, "always")) {
            (Ok(i), Ok(m)) => (i, m),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("capacity: {e}");
                std::process::exit(2);
            }
        };
        if inline.tier == Tier::SessionPolicy && fit_inline == n - 1 {
            fit_inline = n;
        }
        if managed.tier == Tier::SessionPolicy && fit_managed == n - 1 {
            fit_managed = n;
        }
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} |",
            inline.inline_chars,
            inline.tier,
            managed.tier,
            managed.plaintext_chars,
            managed.arns,
            managed.largest_managed
        );
    }
    println!();
    println!(
        "inline only: {fit_inline} plane(s) fit; with managed session policies: {fit_managed} of {max}"
    );
}
