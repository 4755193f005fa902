//! `netplay chat`, two processes in one lobby of `netplay serve`: the lobby mesh, the
//! scene multiplayer protocol and WebRTC end to end, as a user runs them.

mod common;

use std::time::Duration;

use common::signal::{chat, start};
use common::Service;

const WAIT: Duration = Duration::from_secs(20);

fn id_line(line: &str, prefix: &str) -> Option<i32> {
    line.strip_prefix(prefix)?.trim().parse().ok()
}

fn lobby_and_id(c: &mut Service) -> (String, i32) {
    let lobby = c.wait_for_line(WAIT, "`lobby NAME`", |l| {
        l.strip_prefix("lobby ").map(str::to_owned)
    });
    // The id comes first; it was read while waiting for the lobby line.
    let log = c.log();
    let id = log
        .lines()
        .find_map(|l| id_line(l, "joined as "))
        .expect("`joined as ID` before `lobby NAME`");
    (lobby, id)
}

fn run_pair(mode: &[&str]) {
    let server = start(&[]);
    let mut a = chat(server.port, mode, "chat A");
    let (lobby, id_a) = lobby_and_id(&mut a);
    assert_eq!(id_a, 1, "the lobby's creator is 1");
    let mut b = chat(server.port, &["--lobby", &lobby], "chat B");
    let (joined, id_b) = lobby_and_id(&mut b);
    assert_eq!(joined, lobby);
    assert!(id_b >= 2);
    b.wait_for_line(WAIT, "`+ 1`", |l| (l == "+ 1").then_some(()));
    a.wait_for_line(WAIT, "`+ B`", |l| {
        (id_line(l, "+ ") == Some(id_b)).then_some(())
    });

    a.write_line("hello from a");
    b.write_line("hello from b");
    let from_a = "1: hello from a".to_owned();
    let from_b = format!("{id_b}: hello from b");
    b.wait_for_line(WAIT, &from_a, |l| (l == from_a).then_some(()));
    a.wait_for_line(WAIT, &from_b, |l| (l == from_b).then_some(()));

    // B leaves (end of its input): A sees it go.
    b.close_stdin();
    let gone = format!("- {id_b}");
    a.wait_for_line(WAIT, &gone, |l| (l == gone).then_some(()));
    assert!(b
        .guard
        .wait_timeout(Duration::from_secs(5))
        .is_some_and(|s| s.success()));
}

#[test]
fn two_chats_in_a_mesh_lobby_exchange_lines_both_ways() {
    run_pair(&["--mesh"]);
}

#[test]
fn two_chats_in_a_server_lobby_exchange_lines_both_ways() {
    run_pair(&["--client-server"]);
}

#[test]
fn three_chats_in_a_server_lobby_reach_each_other_through_the_host() {
    let server = start(&[]);
    let mut host = chat(server.port, &["--client-server"], "chat host");
    let (lobby, _) = lobby_and_id(&mut host);
    let mut b = chat(server.port, &["--lobby", &lobby], "chat B");
    let mut c = chat(server.port, &["--lobby", &lobby], "chat C");
    let (_, id_b) = lobby_and_id(&mut b);
    let (_, id_c) = lobby_and_id(&mut c);
    // B learns of C from the host's announcement, not from a connection of its own.
    b.wait_for_line(WAIT, "`+ C`", |l| {
        (id_line(l, "+ ") == Some(id_c)).then_some(())
    });
    c.wait_for_line(WAIT, "`+ B`", |l| {
        (id_line(l, "+ ") == Some(id_b)).then_some(())
    });
    b.write_line("relayed");
    let line = format!("{id_b}: relayed");
    c.wait_for_line(WAIT, &line, |l| (l == line).then_some(()));
    host.wait_for_line(WAIT, &line, |l| (l == line).then_some(()));
}
