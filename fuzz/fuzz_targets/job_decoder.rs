//! Any bytes a caller can publish on `toolfan.job.<caller>`, and any bytes
//! on the internal subjects, decode to a value or an error: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toolfan_protocol::{decode, JobLimits, JobSpec, ReplyEvent, ResultHead, TaskMessage, WorkerInfo};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(job) = JobSpec::parse(bytes, &JobLimits::default()) {
        // What passes re-encodes to something that passes again.
        let again = toolfan_protocol::encode(&job);
        assert!(JobSpec::parse(&again, &JobLimits::default()).is_ok());
    }
    let _ = decode::<TaskMessage>("task", bytes);
    let _ = decode::<ReplyEvent>("event", bytes);
    let _ = decode::<WorkerInfo>("heartbeat", bytes);
    let _ = ResultHead::decode(bytes);
});
