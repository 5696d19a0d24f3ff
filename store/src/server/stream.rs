//! Ordered peer streams for Raft messages, as etcd's rafthttp gives them.
//!
//! etcd sends Raft messages to each peer over one long-lived TCP stream, so a peer receives
//! a leader's appends in the order they were sent. madsim's network delivers each datagram
//! after its own random latency, so two appends sent 1 ms apart arrive swapped about half
//! the time. Raft stays safe under reordering, but not fast: a follower rejects an append
//! that arrives ahead of its predecessor, and each rejection sends the leader back to
//! probing. With one-entry appends a lagging member then needed 37 s to catch up 329
//! entries (disk-loss seed 221 before this module), a liveness failure no etcd sees.
//!
//! So each message carries its sender's incarnation and a per-destination sequence
//! number, and the receiver hands messages to Raft in sequence order. A message that
//! arrives ahead of a gap is held until the gap fills or `gap_timeout` passes; then the
//! gap counts as lost (a dropped packet, or a connection that broke: TCP would have
//! resent it, rafthttp would have dropped it with the broken stream) and the held messages
//! go on in order. A message that arrives after its gap was given up on is dropped, as are
//! messages from an incarnation older than the newest one heard from (a dead process's
//! packets still in flight). Under the default 1–10 ms latency a gap timeout of 10 ms
//! keeps every stream strictly ordered; under a latency fault the streams stay ordered
//! unless a packet is late by more than the timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use madsim::time::Instant;

use crate::raft::Message;
use crate::raft::NodeId;

/// A Raft message on the wire: its stream position and the message.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    /// When the sending process started, in nanoseconds of simulated time: a restarted
    /// member opens new streams.
    pub incarnation: u64,
    /// Position in the stream from the sender to this receiver, from 0.
    pub seq: u64,
    pub message: Message,
}

/// The sending side: one sequence counter per destination.
#[derive(Debug)]
pub(crate) struct Outbound {
    incarnation: u64,
    next_seq: BTreeMap<NodeId, u64>,
}

impl Outbound {
    pub fn new(incarnation: u64) -> Self {
        Self { incarnation, next_seq: BTreeMap::new() }
    }

    pub fn frame(&mut self, message: Message) -> Frame {
        let next = self.next_seq.entry(message.to).or_insert(0);
        let seq = *next;
        *next += 1;
        Frame { incarnation: self.incarnation, seq, message }
    }
}

/// What the receiver knows of one sender's stream.
#[derive(Debug)]
struct StreamIn {
    incarnation: u64,
    /// The next sequence number to hand to Raft.
    next: u64,
    /// Messages that arrived ahead of `next`.
    held: BTreeMap<u64, Message>,
    /// Since when `held` has waited for `next` (set iff `held` is not empty).
    waiting_since: Option<Instant>,
}

/// The receiving side: one stream per sender.
#[derive(Debug)]
pub(crate) struct Inbound {
    gap_timeout: Duration,
    streams: BTreeMap<NodeId, StreamIn>,
    /// How many streams wait for a gap (have `waiting_since`). `expire` and
    /// `next_deadline` run around every frame received; with no stream waiting, which is
    /// nearly always, they have nothing to look at.
    n_waiting: usize,
}

impl Inbound {
    pub fn new(gap_timeout: Duration) -> Self {
        Self { gap_timeout, streams: BTreeMap::new(), n_waiting: 0 }
    }

    /// Takes in one frame; appends to `ready` the messages now deliverable, in order.
    pub fn receive(&mut self, frame: Frame, now: Instant, ready: &mut Vec<Message>) {
        let from = frame.message.from;
        let stream = match self.streams.get_mut(&from) {
            Some(stream) if stream.incarnation == frame.incarnation => stream,
            Some(stream) if stream.incarnation > frame.incarnation => return, // a dead process's packet
            _ => {
                // The first frame heard from this incarnation (or since this receiver
                // started) opens the stream where it stands.
                let opened = StreamIn {
                    incarnation: frame.incarnation,
                    next: frame.seq,
                    held: BTreeMap::new(),
                    waiting_since: None,
                };
                if let Some(replaced) = self.streams.insert(from, opened) {
                    self.n_waiting -= usize::from(replaced.waiting_since.is_some());
                }
                self.streams.get_mut(&from).expect("just inserted")
            }
        };
        if frame.seq < stream.next {
            return; // its gap was given up on
        }
        if frame.seq > stream.next {
            stream.held.insert(frame.seq, frame.message);
            if stream.waiting_since.is_none() {
                stream.waiting_since = Some(now);
                self.n_waiting += 1;
            }
            return;
        }
        ready.push(frame.message);
        stream.next += 1;
        let was_waiting = stream.waiting_since.is_some();
        stream.drain(now, ready);
        self.n_waiting = self.n_waiting + usize::from(stream.waiting_since.is_some()) - usize::from(was_waiting);
    }

    /// Gives up on gaps that have waited `gap_timeout`, handing on what they held.
    pub fn expire(&mut self, now: Instant, ready: &mut Vec<Message>) {
        if self.n_waiting == 0 {
            return;
        }
        for stream in self.streams.values_mut() {
            let was_waiting = stream.waiting_since.is_some();
            while let Some(since) = stream.waiting_since {
                if now < since + self.gap_timeout {
                    break;
                }
                coverage::reached!("store.stream.gap-given-up");
                stream.next = *stream.held.keys().next().expect("a waiting stream holds messages");
                stream.drain(now, ready);
            }
            self.n_waiting = self.n_waiting + usize::from(stream.waiting_since.is_some()) - usize::from(was_waiting);
        }
    }

    /// The earliest instant at which [`Inbound::expire`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        debug_assert_eq!(
            self.n_waiting,
            self.streams.values().filter(|s| s.waiting_since.is_some()).count(),
            "the count of waiting streams is off"
        );
        if self.n_waiting == 0 {
            return None;
        }
        self.streams.values().filter_map(|s| s.waiting_since).min().map(|since| since + self.gap_timeout)
    }
}

impl StreamIn {
    /// Hands on the held messages that follow `next` without a gap.
    fn drain(&mut self, now: Instant, ready: &mut Vec<Message>) {
        while let Some(message) = self.held.remove(&self.next) {
            ready.push(message);
            self.next += 1;
        }
        self.waiting_since = if self.held.is_empty() { None } else { Some(now) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::MessageBody;

    fn message(from: NodeId, term: u64) -> Message {
        Message { from, to: 9, term, body: MessageBody::PreVoteResponse { reject: false } }
    }

    fn frame(incarnation: u64, seq: u64, from: NodeId, term: u64) -> Frame {
        Frame { incarnation, seq, message: message(from, term) }
    }

    fn terms(ready: &[Message]) -> Vec<u64> {
        ready.iter().map(|m| m.term).collect()
    }

    #[madsim::test]
    async fn sequence_numbers_count_per_destination() {
        let mut out = Outbound::new(7);
        let mut to = |to| out.frame(Message { to, ..message(1, 1) }).seq;
        assert_eq!([to(2), to(3), to(2), to(2), to(3)], [0, 0, 1, 2, 1]);
    }

    #[madsim::test]
    async fn a_message_ahead_of_a_gap_waits_for_it() {
        let mut inbound = Inbound::new(Duration::from_millis(10));
        let now = Instant::now();
        let mut ready = Vec::new();
        inbound.receive(frame(1, 0, 1, 10), now, &mut ready);
        inbound.receive(frame(1, 2, 1, 12), now, &mut ready);
        inbound.receive(frame(1, 3, 1, 13), now, &mut ready);
        assert_eq!(terms(&ready), [10]);
        assert_eq!(inbound.next_deadline(), Some(now + Duration::from_millis(10)));
        inbound.receive(frame(1, 1, 1, 11), now, &mut ready);
        assert_eq!(terms(&ready), [10, 11, 12, 13]);
        assert_eq!(inbound.next_deadline(), None);
    }

    #[madsim::test]
    async fn a_gap_is_given_up_after_the_timeout_and_its_late_message_dropped() {
        let mut inbound = Inbound::new(Duration::from_millis(10));
        let start = Instant::now();
        let mut ready = Vec::new();
        inbound.receive(frame(1, 0, 1, 10), start, &mut ready);
        inbound.receive(frame(1, 2, 1, 12), start, &mut ready);
        inbound.receive(frame(1, 4, 1, 14), start, &mut ready);
        inbound.expire(start + Duration::from_millis(9), &mut ready);
        assert_eq!(terms(&ready), [10]);
        let later = start + Duration::from_millis(10);
        inbound.expire(later, &mut ready);
        // Seq 2 goes on; seq 4 waits for seq 3 from now on.
        assert_eq!(terms(&ready), [10, 12]);
        assert_eq!(inbound.next_deadline(), Some(later + Duration::from_millis(10)));
        inbound.receive(frame(1, 1, 1, 11), later, &mut ready);
        assert_eq!(terms(&ready), [10, 12], "seq 1 came after its gap was given up");
        inbound.expire(later + Duration::from_millis(10), &mut ready);
        assert_eq!(terms(&ready), [10, 12, 14]);
    }

    #[madsim::test]
    async fn streams_are_per_sender_and_a_restart_opens_a_new_one() {
        let mut inbound = Inbound::new(Duration::from_millis(10));
        let now = Instant::now();
        let mut ready = Vec::new();
        inbound.receive(frame(1, 5, 1, 15), now, &mut ready); // joins the stream mid-way
        inbound.receive(frame(1, 0, 2, 20), now, &mut ready);
        inbound.receive(frame(3, 0, 1, 30), now, &mut ready); // member 1 restarted
        inbound.receive(frame(1, 6, 1, 16), now, &mut ready); // from its dead process
        inbound.receive(frame(3, 1, 1, 31), now, &mut ready);
        assert_eq!(terms(&ready), [15, 20, 30, 31]);
    }
}
