//! Following a stream's messages in order, and noticing a lost server
//! within a couple of seconds.
//!
//! async-nats' ordered consumer hard-codes a 5 s idle heartbeat and takes
//! two missed ones (10 s) for a dead consumer. Its consumer is a memory
//! replica on one server, so when that NATS node dies every job a
//! coordinator follows stalls for those 10 s. A [`Follower`] is the same
//! kind of consumer (ephemeral, no acks, one memory replica, flow
//! control) with a heartbeat of [`FOLLOW_HEARTBEAT`]: two missed
//! heartbeats, a gap in the consumer's sequence or the subscription
//! ending, and it makes a new consumer starting right after the last
//! message it handed out. Nothing stored meanwhile is missed, and nothing
//! is handed out twice.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{push, AckPolicy, DeliverPolicy},
};
use futures::StreamExt;

/// The consumer's idle heartbeat; a dead one is noticed after two.
pub const FOLLOW_HEARTBEAT: Duration = Duration::from_millis(1000);
/// How long to wait before trying again to make the consumer.
const RETRY_EVERY: Duration = Duration::from_millis(250);
/// How long one attempt to make the consumer may take. In a cluster the
/// server places it on one of the stream's peers, which may be a node
/// that just died (it stays a peer until it is removed): that attempt is
/// never answered, and the next one is placed afresh.
pub(crate) const MAKE_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long the server keeps a consumer nobody listens to.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(5);

/// An in-order reader of one stream's messages under one filter.
pub struct Follower {
    js: jetstream::Context,
    stream: String,
    filter_subject: String,
    /// Where the first consumer starts.
    start: DeliverPolicy,
    /// The stream sequence of the last message handed out.
    last: Option<u64>,
    /// The consumer sequence expected next from the current consumer.
    expected: u64,
    messages: Option<push::Messages>,
    /// Consumers made so far (the first one included).
    made: u64,
}

impl Follower {
    /// Follows `filter_subject` on `stream` from `start` on. No request is
    /// made until the first [`Follower::next`].
    pub fn new(
        js: jetstream::Context,
        stream: String,
        filter_subject: String,
        start: DeliverPolicy,
    ) -> Self {
        Self {
            js,
            stream,
            filter_subject,
            start,
            last: None,
            expected: 1,
            messages: None,
            made: 0,
        }
    }

    /// How many times the consumer was made again after a loss.
    pub fn recoveries(&self) -> u64 {
        self.made.saturating_sub(1)
    }

    /// The next message, in stream order. It waits as long as it takes,
    /// making the consumer again as often as needed; cancel it by dropping
    /// the future (nothing is lost: a message is only counted as handed
    /// out when it is returned).
    pub async fn next(&mut self) -> jetstream::Message {
        loop {
            let Some(messages) = self.messages.as_mut() else {
                self.make().await;
                continue;
            };
            match messages.next().await {
                Some(Ok(message)) => {
                    let Ok(info) = message.info() else {
                        tracing::debug!("a followed message without metadata; following again");
                        self.messages = None;
                        continue;
                    };
                    let (consumer_seq, stream_seq) = (info.consumer_sequence, info.stream_sequence);
                    if consumer_seq != self.expected || self.last.is_some_and(|l| stream_seq <= l) {
                        tracing::debug!(
                            consumer_seq,
                            expected = self.expected,
                            "gap in a followed stream; following again from the last message"
                        );
                        self.messages = None;
                        continue;
                    }
                    self.expected += 1;
                    self.last = Some(stream_seq);
                    return message;
                }
                Some(Err(e)) => {
                    tracing::info!(stream = %self.stream, error = %e, "followed consumer lost; making it again");
                    self.messages = None;
                }
                None => self.messages = None,
            }
        }
    }

    /// Makes the consumer, starting after the last message handed out;
    /// on failure waits a moment (the caller loops).
    async fn make(&mut self) {
        let made = tokio::time::timeout(MAKE_TIMEOUT, self.try_make())
            .await
            .unwrap_or_else(|_| Err("no answer in time".into()));
        match made {
            Ok((messages, before)) => {
                // A consumer starting "from now on" that is lost before it
                // delivers anything must not skip what was stored meanwhile.
                self.last = self.last.or(Some(before));
                self.messages = Some(messages);
                self.expected = 1;
                self.made += 1;
            }
            Err(e) => {
                tracing::warn!(stream = %self.stream, error = %e, "cannot follow the stream yet; retrying");
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }

    /// The consumer's messages, and the stream sequence it starts after.
    async fn try_make(&self) -> Result<(push::Messages, u64), async_nats::Error> {
        let deliver_policy = match self.last {
            Some(last) => DeliverPolicy::ByStartSequence {
                start_sequence: last + 1,
            },
            None => self.start,
        };
        let stream = self.js.get_stream_no_info(&self.stream).await?;
        let consumer = stream
            .create_consumer(push::Config {
                deliver_subject: self.js.client().new_inbox(),
                filter_subject: self.filter_subject.clone(),
                deliver_policy,
                ack_policy: AckPolicy::None,
                max_deliver: 1,
                flow_control: true,
                idle_heartbeat: FOLLOW_HEARTBEAT,
                inactive_threshold: INACTIVE_THRESHOLD,
                num_replicas: 1,
                memory_storage: true,
                ..Default::default()
            })
            .await?;
        let before = consumer.cached_info().delivered.stream_sequence;
        Ok((consumer.messages().await?, before))
    }
}
