//! Tests of `llm::limits`.
use super::*;

fn all_alive(_: u32) -> bool {
    true
}

fn flag(s: &str) -> Limits {
    parse_flag(s).expect("valid flag")
}

fn flag_error(s: &str) -> String {
    parse_flag(s).expect_err("invalid flag")
}

#[test]
fn shipped_profiles_parse_and_hold_massgen_defaults() {
    let shipped = shipped();
    let flash = shipped["gemini/gemini-2.5-flash"];
    assert_eq!(flash.describe(), "9 RPM, 240000 TPM, 245 RPD");
    assert_eq!(shipped["gemini/gemini-2.5-pro"].rpm, Some(2));
    assert!(shipped.values().all(|l| !l.is_empty()));
}

#[test]
fn flag_parses_and_names_bad_parts() {
    let limits = flag("rpm=10, tpm=20000,rpd=100,max_concurrent=2");
    let all = "10 RPM, 20000 TPM, 100 RPD, 2 concurrent";
    assert_eq!(limits.describe(), all);
    assert!(flag_error("rpm=x").contains("`rpm=x`"));
    assert!(flag_error("rqm=3").contains("`rqm`"));
    assert!(flag_error("rpm=0").contains("at least 1"));
    assert!(flag_error("rpm=1,rpm=2").contains("twice"));
    assert!(flag_error("rpm").contains("NAME=NUMBER"));
    assert!(parse_flag("").is_err());
    assert_eq!(Limits::default().describe(), "no limits");
}

#[test]
fn spent_rpd_is_never_until_the_oldest_request_leaves() {
    let mut window = Window::default();
    window.grant(1_000, 1, 10, 5);
    window.grant(5_000, 2, 10, 5);
    let decision = window.decide(&flag("rpd=2"), 10_000, 3, 10, 5, &all_alive);
    let why = "rpd limit of 2 requests a day reached".to_owned();
    let resets_at_ms = 1_000 + DAY_MS;
    assert_eq!(decision, Decision::Never { why, resets_at_ms });
    assert!(window.waiting.is_empty(), "a Never ticket leaves the queue");
    let decision = window.decide(&flag("rpd=2"), resets_at_ms, 3, 10, 5, &all_alive);
    assert_eq!(decision, Decision::Go);
}

#[test]
fn dead_processes_leave_the_queue_and_the_flight() {
    let limits = flag("max_concurrent=1");
    let mut window = Window::default();
    window.grant(0, 1, 7, 5);
    let decision = window.decide(&limits, 10, 2, 8, 5, &all_alive);
    assert!(matches!(decision, Decision::Wait { .. }));
    // Pid 7 dies: its request in flight and ticket 2 (pid 8, also dead) are dropped.
    let alive = |pid| pid != 7 && pid != 8;
    assert_eq!(window.decide(&limits, 20, 3, 9, 5, &alive), Decision::Go);
    assert!(window.in_flight.is_empty());
    assert_eq!(window.waiting.len(), 1);
}

#[test]
fn a_server_block_holds_everyone_until_it_ends() {
    let mut window = Window::default();
    window.block_until(5_000);
    let none = Limits::default();
    let decision = window.decide(&none, 1_000, 1, 1, 1, &all_alive);
    assert!(matches!(
        decision,
        Decision::Wait {
            until_ms: 5_000,
            ..
        }
    ));
    assert_eq!(
        window.decide(&none, 5_000, 1, 1, 1, &all_alive),
        Decision::Go
    );
}

struct Request {
    arrive: u64,
    tokens: u64,
    actual: u64,
    duration: u64,
    pid: u32,
}

/// Drives one random scenario through `Window` with a simulated clock and checks
/// every limit, the order of grants, and that nothing waits forever.
fn run_scenario(rng: &mut fastrand::Rng) {
    let maybe = |rng: &mut fastrand::Rng, high| rng.bool().then(|| rng.u64(1..=high));
    let tpm = maybe(rng, 2_000).map(|t| t + 50);
    let limits = Limits {
        rpm: maybe(rng, 6).map(|n| n as u32),
        tpm,
        rpd: maybe(rng, 30).map(|n| n as u32),
        max_concurrent: maybe(rng, 3).map(|n| n as u32),
    };
    let agents = rng.u32(1..=5);
    let largest = tpm.map_or(2_000, |t| t + t / 3);
    let mut requests: Vec<Request> = (0..rng.usize(1..=40))
        .map(|_| {
            let tokens = rng.u64(1..=largest);
            Request {
                arrive: rng.u64(0..=300_000),
                tokens,
                actual: rng.u64(1..=tokens),
                duration: rng.u64(0..=90_000),
                pid: 100 + rng.u32(0..agents),
            }
        })
        .collect();
    requests.sort_by_key(|r| r.arrive);

    let mut window = Window::default();
    let (mut now, mut arrived) = (0, 0);
    let mut pending: Vec<usize> = Vec::new();
    let mut running: Vec<(u64, usize)> = Vec::new();
    let mut granted: Vec<(u64, usize)> = Vec::new();
    loop {
        for &(_, i) in running.iter().filter(|&&(end, _)| end <= now) {
            window.release(i as u64, Some(requests[i].actual));
        }
        running.retain(|&(end, _)| end > now);
        let mut wake = u64::MAX;
        // True when request `i` is done asking: granted, or refused for the day.
        let ask = |window: &mut Window, i: usize, wake: &mut u64| {
            let r = &requests[i];
            match window.decide(&limits, now, i as u64, r.pid, r.tokens, &all_alive) {
                Decision::Go => window.grant(now, i as u64, r.pid, r.tokens),
                Decision::Wait { until_ms, .. } if until_ms > now => {
                    *wake = (*wake).min(until_ms);
                    return false;
                }
                Decision::Wait { until_ms, .. } => {
                    assert_eq!(until_ms, now);
                    return false;
                }
                Decision::Never { resets_at_ms, .. } => {
                    assert!(resets_at_ms > now && limits.rpd.is_some());
                }
            }
            true
        };
        // Arrivals take their tickets in arrival order; then all poll in any order.
        while arrived < requests.len() && requests[arrived].arrive <= now {
            if !ask(&mut window, arrived, &mut wake) {
                pending.push(arrived);
            }
            arrived += 1;
        }
        loop {
            rng.shuffle(&mut pending);
            let before = pending.len();
            pending.retain(|&i| !ask(&mut window, i, &mut wake));
            for i in window.in_flight.iter().map(|r| r.id as usize) {
                if !running.iter().any(|&(_, j)| j == i) {
                    running.push((now + requests[i].duration, i));
                    granted.push((now, i));
                }
            }
            let max = limits.max_concurrent.map_or(usize::MAX, |m| m as usize);
            assert!(running.len() <= max, "max_concurrent passed: {limits:?}");
            if pending.len() == before {
                break;
            }
        }
        let next_arrival = requests.get(arrived).map_or(u64::MAX, |r| r.arrive);
        let next_end = running.iter().map(|r| r.0).min().unwrap_or(u64::MAX);
        let next = wake.min(next_arrival).min(next_end);
        if next == u64::MAX {
            assert!(pending.is_empty(), "stuck: {limits:?}");
            break;
        }
        now = next;
    }

    let order: Vec<usize> = granted.iter().map(|&(_, i)| i).collect();
    assert!(order.is_sorted_by(|a, b| a < b), "not FIFO: {order:?}");
    for &(t, _) in &granted {
        let within = |span| granted.iter().filter(move |g| g.0 <= t && g.0 + span > t);
        let minute: Vec<u64> = within(MINUTE_MS).map(|g| requests[g.1].actual).collect();
        let tokens: u64 = minute.iter().sum();
        let (rpm, tpm) = (limits.rpm.map(|n| n as usize), limits.tpm);
        assert!(
            rpm.is_none_or(|rpm| minute.len() <= rpm),
            "rpm passed: {limits:?}"
        );
        let alone = minute.len() == 1;
        assert!(
            tpm.is_none_or(|tpm| tokens <= tpm || alone),
            "tpm passed: {limits:?}"
        );
        let day = within(DAY_MS).count();
        assert!(
            limits.rpd.is_none_or(|rpd| day <= rpd as usize),
            "rpd passed: {limits:?}"
        );
    }
}

#[test]
fn random_scenarios_keep_every_limit_in_fifo_order() {
    let mut rng = fastrand::Rng::with_seed(0x6d61_7373_6765_6e00);
    for _ in 0..500 {
        run_scenario(&mut rng);
    }
}

fn state(dir: &Path, file: &str) -> Window {
    let state = fs::read(dir.join(file)).expect("state written");
    serde_json::from_slice(&state).expect("state parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_limiters_share_one_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    // As two processes would: each limiter opens and locks the files on its own.
    let first = Limiter::new(dir.path(), "test/model", flag("rpm=3"));
    let second = Limiter::new(dir.path(), "test/model", flag("rpm=3"));
    let tasks: Vec<_> = (0..5)
        .map(|n| {
            let limiter = [&first, &second][n % 2].clone();
            tokio::spawn(async move {
                let mut waits = 0;
                let mut on_wait = |_: u64, _: &str| waits += 1;
                let acquire = limiter.acquire(10, &mut on_wait);
                let permit = tokio::time::timeout(Duration::from_millis(300), acquire).await;
                (permit.map(|p| p.expect("state is usable")), waits)
            })
        })
        .collect();
    let (mut went, mut waited) = (Vec::new(), 0);
    for task in tasks {
        match task.await.expect("task ran") {
            (Ok(permit), _) => went.push(permit),
            (Err(_still_waiting), waits) => {
                assert!(waits >= 1, "a waiting request reports it");
                waited += 1;
            }
        }
    }
    assert_eq!((went.len(), waited), (3, 2));
    let window = state(dir.path(), "test_model.json");
    assert!(
        window.waiting.is_empty(),
        "abandoned tickets leave the queue"
    );
    assert_eq!(window.in_flight.len(), 3);
    drop(went);
    let window = state(dir.path(), "test_model.json");
    assert!(window.in_flight.is_empty() && window.requests.len() == 3);
}

#[tokio::test]
async fn spent_rpd_fails_at_once_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limiter = Limiter::new(dir.path(), "gemini/gemini-2.5-pro", flag("rpd=2"));
    let mut waits = Vec::new();
    let mut on_wait = |_: u64, why: &str| waits.push(why.to_owned());
    for _ in 0..2 {
        limiter
            .acquire(1, &mut on_wait)
            .await
            .expect("within budget")
            .done(1);
    }
    let third = tokio::time::timeout(Duration::from_secs(5), limiter.acquire(1, &mut on_wait));
    let err = third
        .await
        .expect("fails at once")
        .expect_err("budget spent");
    assert!(waits.is_empty(), "{waits:?}");
    let message = err.to_string();
    let names = message.contains("rpd") && message.contains("gemini/gemini-2.5-pro");
    assert!(
        names && matches!(err, LimitError::Exhausted { .. }),
        "{message}"
    );
}

#[tokio::test]
async fn a_corrupt_state_is_set_aside() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("k.json"), "{ not json").expect("write");
    let limiter = Limiter::new(dir.path(), "k", flag("rpm=1"));
    let permit = limiter.acquire(1, &mut |_, _| {}).await;
    permit.expect("acquired").done(1);
    assert!(dir.path().join("k.json.corrupt").exists());
    assert_eq!(state(dir.path(), "k.json").requests.len(), 1);
}
