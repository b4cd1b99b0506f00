//! `provisioner policies sync`: brings the managed session policies in IAM in line with
//! the platform file, printing the plan first (see `provisioner_iam::sync`).
//!
//! Exit codes: 0 done (or, with `--dry-run`, planned), 2 usage or configuration error,
//! 3 the plan is refused (a policy to prune is still attached, a document over IAM's
//! limit), 4 an IAM call failed (the message names the missing permission or the
//! unreachable endpoint).

use std::time::Instant;

use provisioner_core::{exit, load};
use provisioner_iam::aws::Clients;
use provisioner_iam::desired::{desired_managed_policies, managed_path};
use provisioner_iam::sync;
use serde_json::json;

use crate::args::PoliciesSyncArgs;

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub fn run(args: &PoliciesSyncArgs) -> i32 {
    let path = load::config_path(args.config.as_deref(), &env_lookup);
    let platform = match load::load_file(&path, &env_lookup) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("provisioner: {e}");
            return exit::CONFIG;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("provisioner: cannot start the async runtime: {e}");
            return exit::CREDENTIALS;
        }
    };
    runtime.block_on(sync_platform(&platform, args))
}

async fn sync_platform(
    platform: &provisioner_core::model::Platform,
    args: &PoliciesSyncArgs,
) -> i32 {
    let started = Instant::now();
    let desired = desired_managed_policies(platform);
    let path = managed_path(platform);
    let account = platform.aws.account_id.clone().unwrap_or_default();
    let clients = Clients::new(platform).await;
    let existing = match sync::observe(&clients, &account, &path, &desired, args.prune).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("provisioner: {e}");
            return exit::CREDENTIALS;
        }
    };
    if let Some(other) = existing
        .iter()
        .filter_map(|e| e.arn.split(':').nth(4))
        .find(|a| !account.is_empty() && *a != account)
    {
        eprintln!(
            "provisioner: IAM holds the policies under {path} in account {other}, but aws.account_id is {account}: launches would pass ARNs that do not exist; fix: set aws.account_id to {other}, or run the sync with credentials of account {account}"
        );
        return exit::CONFIG;
    }
    let plan = match sync::plan(&path, &desired, &existing, args.prune) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("provisioner: {e}");
            return exit::REFUSED;
        }
    };
    if !args.json {
        for line in plan.lines() {
            println!("{line}");
        }
    }
    let (applied, failure) = if args.dry_run || !plan.writes() {
        (None, None)
    } else {
        match sync::apply(&clients, &plan).await {
            Ok(done) => (Some(done), None),
            Err((done, e)) => (Some(done), Some(e)),
        }
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if args.json {
        let mut v = plan.to_json();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("dry_run".into(), json!(args.dry_run));
            obj.insert("applied".into(), json!(applied));
            obj.insert(
                "error".into(),
                json!(failure.as_ref().map(|e| e.line.clone())),
            );
            obj.insert("elapsed_ms".into(), json!(elapsed_ms));
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if args.dry_run {
        if plan.in_sync() {
            println!("IAM matches the platform file (dry run: nothing was changed)");
        } else {
            println!(
                "IAM does not match the platform file (dry run: nothing was changed; run without --dry-run to apply)"
            );
        }
    } else if let Some(done) = &applied {
        println!(
            "applied in {:.1} s: {} created, {} new version(s) ({} old version(s) deleted), {} pruned",
            elapsed_ms as f64 / 1000.0,
            done.created,
            done.new_versions,
            done.versions_deleted,
            done.pruned
        );
    } else {
        println!("IAM already matches the platform file: nothing to do");
    }
    match failure {
        Some(e) => {
            eprintln!(
                "provisioner: {e} (the changes before it were applied; running the sync again continues)"
            );
            exit::CREDENTIALS
        }
        None => exit::OK,
    }
}
