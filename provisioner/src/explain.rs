//! `provisioner explain`: the dry run. Resolves as a launch would, without calling STS,
//! and prints the decision either as JSON or as a report a platform admin can read to
//! answer "why did this kernel get that identity?".

use std::fmt::Write as _;

use provisioner_core::context::{Flow, LaunchContext};
use provisioner_core::decision::{Decision, Plan, Tier, resolve};
use provisioner_core::exit;
use provisioner_core::model::Platform;
use provisioner_core::policy::{MAX_MANAGED_POLICY_CHARS, MAX_POLICY_ARNS, MAX_POLICY_CHARS};
use provisioner_core::record::DecisionRecord;

use crate::args::ExplainArgs;
use crate::error::Error;
use crate::platform::{self, env_lookup};

pub fn run(args: &ExplainArgs) -> Result<(), Error> {
    if let Some(socket) =
        provisioner_core::broker::client::socket_from(args.context.broker.as_deref(), &env_lookup)
    {
        return run_brokered(args, &socket);
    }
    let platform = platform::load(args.context.config.as_deref())?;
    let ctx = LaunchContext::from_sources(&args.context.flags(), &env_lookup, Flow::Notebook)?;
    let decision = resolve(&platform, &ctx, &[]);
    if args.json {
        let v = DecisionRecord::explain_value(&decision);
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", report(&platform, &decision));
        for note in provisioner_core::access::unlisted_notes(&platform, &ctx) {
            println!("note: {note}");
        }
    }
    // A dry run succeeds whatever it finds; the refusal is in the output. Exit codes
    // still tell scripts that a launch would be refused.
    decision.refusal().map_or(Ok(()), |r| {
        Err(Error::Reported {
            exit_code: r.exit_code,
        })
    })
}

/// The dry run through the broker: the broker decides for the socket peer, as it
/// would for a launch, and answers with the record (policy included).
fn run_brokered(args: &ExplainArgs, socket: &std::path::Path) -> Result<(), Error> {
    use provisioner_core::broker::client;
    let ctx = client::context_from_sources(&args.context.flags(), &env_lookup, Flow::Notebook)?;
    let record = client::explain(socket, ctx).map_err(|r| Error::Broker(Box::new(r)))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&record).unwrap_or_default()
        );
    } else {
        print!("{}", brokered_report(&record));
    }
    Error::from_exit_code(
        record
            .get("refused")
            .and_then(|r| r.get("exit_code"))
            .and_then(|c| c.as_i64())
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(exit::OK),
    )
}

/// A readable report of a record the broker sent (the platform file is the broker's,
/// so only what the record says is shown).
fn brokered_report(r: &serde_json::Value) -> String {
    let text = |k: &str| match r.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => "(none)".into(),
        Some(v) => v.to_string(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} flow for user {} (decided by the broker)",
        text("flow"),
        text("user")
    );
    if let Some(c) = r.get("caller") {
        let _ = writeln!(
            out,
            "  caller             uid {} pid {} ({}), claimed {}",
            c.get("uid").map(|v| v.to_string()).unwrap_or_default(),
            c.get("pid").map(|v| v.to_string()).unwrap_or_default(),
            c.get("unix_user").and_then(|v| v.as_str()).unwrap_or("?"),
            c.get("claimed_user")
                .and_then(|v| v.as_str())
                .unwrap_or("(itself)"),
        );
    }
    let _ = writeln!(out, "  workspace          {}", text("workspace"));
    let _ = writeln!(out, "  runtime template   {}", text("runtime_template"));
    let _ = writeln!(out);
    if let Some(refused) = r.get("refused").filter(|v| !v.is_null()) {
        let f = |k: &str| {
            refused
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let _ = writeln!(out, "REFUSED ({}) at the {} tier", f("code"), text("tier"));
        let _ = writeln!(out, "  why    {}", f("message"));
        let _ = writeln!(out, "  fix    {}", f("fix"));
    } else {
        let _ = writeln!(out, "tier {} (reason {})", text("tier"), text("reason"));
        let _ = writeln!(out, "  role          {}", text("role_arn"));
        let _ = writeln!(out, "  session name  {}", text("session_name"));
        let _ = writeln!(out, "  duration      {} s", text("duration_seconds"));
        let _ = writeln!(out, "  policy        {} characters", text("policy_chars"));
    }
    for s in r
        .get("skipped")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "  skipped {} ({}): {}",
            s.get("tier").and_then(|v| v.as_str()).unwrap_or(""),
            s.get("reason").and_then(|v| v.as_str()).unwrap_or(""),
            s.get("detail").and_then(|v| v.as_str()).unwrap_or("")
        );
    }
    for w in r
        .get("warnings")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        let _ = writeln!(out, "  warning: {}", w.as_str().unwrap_or(""));
    }
    out
}

fn tier_title(t: Tier) -> &'static str {
    match t {
        Tier::WorkspaceSa => "workspace service account",
        Tier::RuntimeTemplateSa => "runtime template service account",
        Tier::SessionPolicy => "data-plane session policy",
        Tier::Default => "default cluster credentials",
    }
}

/// The readable report. Every line is plain text; no secret is known here.
pub fn report(platform: &Platform, d: &Decision) -> String {
    let ctx = &d.context;
    let mut out = String::new();
    let _ = writeln!(out, "{} flow for user {}", ctx.flow, ctx.user);
    let _ = writeln!(out, "  platform file      {}", platform.source);
    let _ = writeln!(
        out,
        "  workspace          {}",
        ctx.workspace.as_deref().unwrap_or("(none)")
    );
    let _ = writeln!(
        out,
        "  runtime template   {}",
        ctx.runtime_template.as_deref().unwrap_or("(none)")
    );
    let _ = writeln!(out);

    match &d.plan {
        Plan::Refused(r) => {
            let _ = writeln!(out, "REFUSED ({}) at the {} tier", r.code.as_str(), d.tier);
            let _ = writeln!(out, "  why    {}", r.message);
            let _ = writeln!(out, "  fix    {}", r.fix);
            let _ = writeln!(out, "  exit   {}", r.exit_code);
        }
        _ => {
            let reason = d
                .reason
                .map(|r| format!(" ({})", r.as_str()))
                .unwrap_or_default();
            let _ = writeln!(out, "identity: {}{reason} = {}", d.tier, tier_title(d.tier));
            match &d.plan {
                Plan::AssumeRole(a) => {
                    if let Some(sa) = &a.service_account {
                        let _ = writeln!(out, "  service account    {sa} (IAM role)");
                    }
                    let _ = writeln!(out, "  AssumeRole         {}", a.role_arn);
                    let _ = writeln!(out, "  session name       {}", a.session_name);
                    let _ = writeln!(
                        out,
                        "  duration           {} s ({:.1} h)",
                        a.duration_seconds,
                        f64::from(a.duration_seconds) / 3600.0
                    );
                    if a.external_id.is_some() {
                        let _ = writeln!(out, "  external id        set");
                    }
                    if let Some(si) = &a.source_identity {
                        let _ = writeln!(out, "  source identity    {si}");
                    }
                    if !a.tags.is_empty() {
                        let tags: Vec<String> =
                            a.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        let _ = writeln!(out, "  session tags       {}", tags.join(", "));
                    }
                    if let Some(p) = &a.policy {
                        let _ = writeln!(
                            out,
                            "  session policy     {} of {MAX_POLICY_CHARS} characters, sha256 {}",
                            p.chars(),
                            p.sha256()
                        );
                    }
                }
                Plan::StaticKeys(s) => {
                    let _ = writeln!(
                        out,
                        "  service account    {} (IAM user, static keys)",
                        s.service_account
                    );
                    let _ = writeln!(out, "  access key id      from {}", s.access_key_id);
                    let _ = writeln!(out, "  secret access key  from {}", s.secret_access_key);
                    let _ = writeln!(out, "  expiry             none (static keys do not expire)");
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "  nothing is minted: the kernel keeps the cluster's own credential chain (node role or instance profile)"
                    );
                }
            }
        }
    }

    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "how it was decided ({} table, first match wins):",
        if ctx.flow == Flow::Job {
            "job"
        } else {
            "notebook"
        }
    );
    for s in &d.skipped {
        let _ = writeln!(
            out,
            "  - {:<20} skipped  {:<22} {}",
            s.tier.as_str(),
            s.reason.as_str(),
            s.detail
        );
    }
    let verdict = if d.refusal().is_some() {
        "refused"
    } else {
        "taken"
    };
    let _ = writeln!(out, "  - {:<20} {verdict}", d.tier.as_str());

    if !d.warnings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "warnings:");
        for w in &d.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    if let Some(a) = d.assume_role().filter(|a| a.policy.is_some()) {
        layout_report(&mut out, a);
    }
    if let Some(p) = d.policy() {
        let _ = writeln!(out);
        let _ = writeln!(out, "session policy (sent minified; shown indented):");
        let pretty = serde_json::to_string_pretty(&p.to_value()).unwrap_or_default();
        for line in pretty.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    for m in d
        .assume_role()
        .map(|a| a.managed_policies.as_slice())
        .unwrap_or_default()
    {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "managed session policy {} (held in IAM; shown indented):",
            m.arn
        );
        let pretty = serde_json::to_string_pretty(&m.to_value()).unwrap_or_default();
        for line in pretty.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// Which statements went where, and the headroom of every limit STS and IAM set.
fn layout_report(out: &mut String, a: &provisioner_core::decision::AssumeRolePlan) {
    let Some(inline) = &a.policy else { return };
    let arn_chars: usize = a.policy_arns.iter().map(String::len).sum();
    let plaintext = inline.chars() + arn_chars;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "session policies (the session may do what the role allows and one of these allows):"
    );
    let _ = writeln!(
        out,
        "  {:<44} {:>5} of {MAX_POLICY_CHARS} characters{}, {} left",
        "inline",
        plaintext,
        if arn_chars > 0 {
            format!(" (document {}, ARNs {arn_chars})", inline.chars())
        } else {
            String::new()
        },
        MAX_POLICY_CHARS.saturating_sub(plaintext)
    );
    let _ = writeln!(
        out,
        "  {:<44} {:>5} of {MAX_POLICY_ARNS}, {} left",
        "policy ARNs",
        a.policy_arns.len(),
        MAX_POLICY_ARNS.saturating_sub(a.policy_arns.len())
    );
    for m in &a.managed_policies {
        let _ = writeln!(
            out,
            "  {:<44} {:>5} of {MAX_MANAGED_POLICY_CHARS} characters, {} left",
            m.name,
            m.chars(),
            MAX_MANAGED_POLICY_CHARS.saturating_sub(m.chars())
        );
    }
    let _ = writeln!(out, "  what went where:");
    for p in &a.placements {
        let _ = writeln!(out, "    - {:<60} -> {}", p.part, p.policy);
    }
}
