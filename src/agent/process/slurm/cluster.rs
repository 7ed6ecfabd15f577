//! The cluster as a whole: the jobs of a run found by name and cancelled (`clean`), and one
//! tiny job that says where and how fast jobs run (`doctor --executor slurm`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::state::{scancel, slurm_command, slurm_error};
use super::{Submit, node_program, supervise};
use crate::agent::process::Job;
use crate::config::SlurmSection;
use crate::model::SlurmJob;

/// The ids of the queued and running jobs whose name starts with `prefix`
/// (`massgen-<run>-`).
pub fn jobs_named(prefix: &str) -> std::io::Result<Vec<u64>> {
    let out = std::process::Command::new("squeue")
        .args(["--me", "-h", "-o", "%i %j"])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(slurm_error(
            "squeue failed",
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (id, name) = l.trim().split_once(' ')?;
            name.starts_with(prefix).then(|| id.parse().ok())?
        })
        .collect())
}

/// Cancels every queued or running job of a run (named `massgen-<run>-…`), whoever
/// submitted it: what a killed git-massgen left. Waits (up to 30 s) until Slurm has ended
/// them, so that nothing writes to a worktree afterwards. Returns their ids.
pub fn cancel_run(run: &str) -> std::io::Result<Vec<u64>> {
    let prefix = format!("massgen-{run}-");
    let jobs = jobs_named(&prefix)?;
    for id in &jobs {
        scancel(*id);
    }
    let until = Instant::now() + Duration::from_secs(30);
    while !jobs.is_empty() && Instant::now() < until {
        if jobs_named(&prefix)
            .map(|left| left.is_empty())
            .unwrap_or(true)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(jobs)
}

/// What one tiny job says about the cluster (`doctor --executor slurm`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Probe {
    pub job: u64,
    pub node: Option<String>,
    /// `sbatch --version` here.
    pub slurm: String,
    /// `git-massgen --version` as the node ran it.
    pub program: String,
    /// From submission until Slurm said the job ran.
    pub start_ms: u64,
    /// From submission until git-massgen saw it complete.
    pub total_ms: u64,
}

/// Submits `git-massgen --version` as a job through the same path agents take, and reports
/// where it ran, what it printed and how long it took. Its files go in a temporary
/// directory under `within`, which the nodes must see.
pub async fn probe(slurm: Arc<SlurmSection>, within: PathBuf) -> Result<Probe, String> {
    let version = slurm_command(&["sbatch", "--version"])
        .await
        .map_err(|e| e.to_string())?;
    let dir = tempfile::Builder::new()
        .prefix("massgen-doctor-")
        .tempdir_in(&within)
        .map_err(|e| format!("cannot make a directory for the job's files: {e}"))?;
    let program = node_program(&slurm).map_err(|e| e.to_string())?;
    let argv = vec![program.display().to_string(), "--version".to_owned()];
    let out_path = dir.path().join("stdout");
    let file = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let seen = Arc::new(std::sync::Mutex::new((None::<Duration>, None::<SlurmJob>)));
    let submitted = Instant::now();
    let on_state = {
        let seen = seen.clone();
        Box::new(move |job: &SlurmJob| {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            if job.state != "PENDING" && seen.0.is_none() {
                seen.0 = Some(submitted.elapsed());
            }
            seen.1 = Some(job.clone());
        })
    };
    let job = Job {
        argv: &argv,
        cwd: dir.path(),
        env: Vec::new(),
        env_remove: &[],
        stdout: file(&out_path)?,
        stderr: file(&dir.path().join("stderr"))?,
        timeout: Duration::from_secs(120),
        watch: None,
        sandbox: None,
        remote: None,
    };
    let submit = Submit {
        slurm,
        name: "massgen-doctor".to_owned(),
        spool: dir.path().join("doctor.slurm"),
        export: Vec::new(),
        on_state: Some(on_state),
    };
    let (_keep, cancel) = watch::channel(false);
    let finished = supervise(job, submit, cancel)
        .await
        .map_err(|e| e.to_string())?;
    let (start, last) = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let last = last.ok_or("the job was never seen")?;
    if !finished.success() {
        let err = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
        return Err(format!(
            "the test job {} {}: {}",
            last.id,
            finished.describe(),
            err.trim()
        ));
    }
    Ok(Probe {
        job: last.id,
        node: last.node,
        slurm: version.trim().to_owned(),
        program: std::fs::read_to_string(&out_path)
            .unwrap_or_default()
            .trim()
            .to_owned(),
        start_ms: start.unwrap_or(finished.duration).as_millis() as u64,
        total_ms: submitted.elapsed().as_millis() as u64,
    })
}
