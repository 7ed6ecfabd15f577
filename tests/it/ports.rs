//! A block of ports per agent: `MASSGEN_PORT` and `MASSGEN_PORTS` in the environment of its
//! agent and of its test command, distinct across the run's agents.

use std::collections::BTreeSet;

use crate::support::TestRepo;

#[test]
fn every_agent_gets_its_own_block_of_free_ports() {
    let repo = TestRepo::new();
    repo.unconfined();
    let seen = repo.root.join("seen");
    std::fs::create_dir_all(&seen).unwrap();
    let body = format!(
        "echo \"$MASSGEN_PORT $MASSGEN_PORTS\" > '{}'/\"$MASSGEN_AGENT\".agent; echo x > x.txt",
        seen.display()
    );
    let test = format!(
        "echo \"$MASSGEN_PORT $MASSGEN_PORTS\" > '{}'/\"$MASSGEN_AGENT\".test",
        seen.display()
    );
    let mut cmd = repo.massgen().args(["run", "--json", "--test", &test]);
    let names: Vec<String> = (1..=8).map(|i| format!("a{i}")).collect();
    for name in &names {
        cmd = cmd.args(["--agent-cmd", &repo.agent(name, &body)]);
    }
    let json = cmd.args(["ports"]).expect_json(0);
    let mut firsts = BTreeSet::new();
    for name in &names {
        let agent = std::fs::read_to_string(seen.join(format!("{name}.agent"))).unwrap();
        let test = std::fs::read_to_string(seen.join(format!("{name}.test"))).unwrap();
        assert_eq!(agent, test, "{name}: the test sees the agent's ports");
        let (port, range) = agent.trim().split_once(' ').expect("two words");
        let port: u16 = port.parse().expect("a port");
        assert_eq!(range, format!("{port}-{}", port + 9), "{name}");
        assert_eq!(
            crate::support::candidate(&json, name)["port"],
            serde_json::json!(port)
        );
        firsts.insert(port);
    }
    assert_eq!(firsts.len(), 8, "{firsts:?}");
    let sorted: Vec<u16> = firsts.into_iter().collect();
    for w in sorted.windows(2) {
        assert!(w[1] - w[0] >= 10, "blocks overlap: {sorted:?}");
    }
}
