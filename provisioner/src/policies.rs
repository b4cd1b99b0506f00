//! `provisioner policies sync`: brings the managed session policies in IAM in line with
//! the platform file, printing the plan first (see `provisioner_iam::sync`).
//!
//! Exit codes: 0 done (or, with `--dry-run`, planned), 2 usage or configuration error,
//! 3 the plan is refused (a policy to prune is still attached, a document over IAM's
//! limit), 4 an IAM call failed (the message names the missing permission or the
//! unreachable endpoint).

use std::time::Instant;

use provisioner_iam::aws::Clients;
use provisioner_iam::desired::{desired_managed_policies, managed_path};
use provisioner_iam::sync;
use serde_json::json;

use crate::args::PoliciesSyncArgs;
use crate::error::Error;
use crate::platform;

pub fn run(args: &PoliciesSyncArgs) -> Result<(), Error> {
    let platform = platform::load(args.config.as_deref())?;
    platform::runtime()?.block_on(sync_platform(&platform, args))
}

async fn sync_platform(
    platform: &provisioner_core::model::Platform,
    args: &PoliciesSyncArgs,
) -> Result<(), Error> {
    let started = Instant::now();
    let desired = desired_managed_policies(platform);
    let path = managed_path(platform);
    let account = platform.aws.account_id.clone().unwrap_or_default();
    let clients = Clients::new(platform).await;
    let existing = sync::observe(&clients, &account, &path, &desired, args.prune)
        .await
        .map_err(Error::Iam)?;
    if let Some(other) = existing
        .iter()
        .filter_map(|e| e.arn.split(':').nth(4))
        .find(|a| !account.is_empty() && *a != account)
    {
        return Err(Error::AccountMismatch {
            path,
            found: other.to_string(),
            configured: account,
        });
    }
    let plan = sync::plan(&path, &desired, &existing, args.prune).map_err(Error::SyncRefused)?;
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
    failure.map_or(Ok(()), |e| Err(Error::SyncFailed(e)))
}
