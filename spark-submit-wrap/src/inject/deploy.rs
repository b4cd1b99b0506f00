//! Where a Spark job's driver and executors run, from the effective master and deploy
//! mode: which `*Env.` conf prefixes reach them, and whether they run outside the JVM
//! `spark-submit` starts here (then endpoint delivery gives them the remote endpoint).

use super::{EXECUTOR_ENV, K8S_DRIVER_ENV, YARN_AM_ENV};

/// Which cluster manager runs the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Local,
    /// `local-cluster[N,C,M]`: a standalone master and workers on this host, each
    /// executor in a JVM of its own.
    LocalCluster,
    Standalone,
    Yarn,
    Kubernetes,
    Other,
}

/// Where driver and executors run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deploy {
    pub manager: Manager,
    /// `--deploy-mode cluster`: the driver runs on the cluster, not in this process.
    pub cluster: bool,
}

impl Deploy {
    /// From the effective master and deploy mode (Spark's defaults: `local[*]`, client).
    pub fn from(master: Option<&str>, deploy_mode: Option<&str>) -> Deploy {
        let m = master.unwrap_or("local[*]").trim();
        let manager = if m.starts_with("local-cluster") {
            Manager::LocalCluster
        } else if m == "local" || m.starts_with("local[") {
            Manager::Local
        } else if m.starts_with("spark://") {
            Manager::Standalone
        } else if m == "yarn" || m.starts_with("yarn-") {
            Manager::Yarn
        } else if m.starts_with("k8s://") {
            Manager::Kubernetes
        } else {
            Manager::Other
        };
        Deploy {
            manager,
            cluster: deploy_mode.map(str::trim) == Some("cluster"),
        }
    }

    pub fn describe(&self) -> String {
        let m = match self.manager {
            Manager::Local => "local",
            Manager::LocalCluster => "local-cluster",
            Manager::Standalone => "standalone",
            Manager::Yarn => "yarn",
            Manager::Kubernetes => "kubernetes",
            Manager::Other => "other",
        };
        format!("{m} {}", if self.cluster { "cluster" } else { "client" })
    }

    /// Whether executors (or the driver) run in JVMs other than the one `spark-submit`
    /// starts here: every master but `local`, `local[N]`, `local[*]` and `local[N,F]`
    /// (`local-cluster`, `spark://`, YARN, Kubernetes, and any master the wrapper does not
    /// know), and every cluster deploy mode. Those JVMs cannot read this process's
    /// token file, or cannot reach this host's loopback address: endpoint delivery
    /// gives them the broker's HTTPS endpoint and an application token.
    pub fn executors_elsewhere(&self) -> bool {
        self.cluster || self.manager != Manager::Local
    }

    /// The env-conf prefixes the wrapper fills for this deployment.
    pub fn env_prefixes(&self) -> Vec<&'static str> {
        let mut v = vec![EXECUTOR_ENV];
        if self.cluster {
            match self.manager {
                Manager::Yarn => v.push(YARN_AM_ENV),
                Manager::Kubernetes => v.push(K8S_DRIVER_ENV),
                _ => {}
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_from_master_and_mode() {
        assert_eq!(Deploy::from(None, None).manager, Manager::Local);
        let d = Deploy::from(Some("yarn"), Some("cluster"));
        assert_eq!((d.manager, d.cluster), (Manager::Yarn, true));
        assert_eq!(d.env_prefixes(), vec![EXECUTOR_ENV, YARN_AM_ENV]);
        let d = Deploy::from(Some("k8s://https://api:6443"), Some("cluster"));
        assert_eq!(d.env_prefixes(), vec![EXECUTOR_ENV, K8S_DRIVER_ENV]);
        let d = Deploy::from(Some("k8s://https://api:6443"), Some("client"));
        assert_eq!(d.env_prefixes(), vec![EXECUTOR_ENV]);
        assert_eq!(
            Deploy::from(Some("spark://m:7077"), None).manager,
            Manager::Standalone
        );
    }

    #[test]
    fn executors_run_elsewhere_for_every_master_but_local() {
        let d = |m: Option<&str>, mode: Option<&str>| Deploy::from(m, mode);
        for m in [
            None,
            Some("local"),
            Some("local[2]"),
            Some("local[*]"),
            Some(" local[4,2] "),
        ] {
            assert!(!d(m, None).executors_elsewhere(), "{m:?}");
            assert!(!d(m, Some("client")).executors_elsewhere(), "{m:?}");
            assert_eq!(d(m, None).manager, Manager::Local, "{m:?}");
        }
        for m in [
            "local-cluster[2,1,1024]",
            "spark://master:7077",
            "yarn",
            "k8s://https://api:6443",
            "mesos://x:5050",
            // Not a master Spark knows: treated as remote, never as the driver's JVM.
            "localhost",
        ] {
            assert!(d(Some(m), None).executors_elsewhere(), "{m}");
        }
        assert_eq!(d(Some("localhost"), None).manager, Manager::Other);
        // Cluster deploy mode: the driver itself runs elsewhere.
        assert!(d(Some("local[2]"), Some("cluster")).executors_elsewhere());
        assert!(d(Some("yarn"), Some("cluster")).executors_elsewhere());
    }
}
