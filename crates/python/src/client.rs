//! `Client`: a connection to a toolfan cluster, the Rust [`toolfan::Client`]
//! behind it. Every method returns an awaitable; none holds the GIL while
//! it waits on the network.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_async_runtimes::tokio::future_into_py;
use toolfan::llm::{anthropic::ToolUse, openai::ToolCall};
use toolfan::{Client, ClientOptions, Job, Policy};

use crate::convert::seconds;
use crate::error;
use crate::job::PyJob;
use crate::result;
use crate::task::tasks;

/// A connection to a toolfan cluster, as caller `caller`.
#[pyclass(name = "Client", module = "toolfan", frozen)]
pub(crate) struct PyClient {
    client: Client,
    caller: String,
}

#[pymethods]
impl PyClient {
    /// Connects (an awaitable of a `Client`).
    #[staticmethod]
    #[pyo3(signature = (nats_url, *, caller="default", caller_grace=Some(10.0), answer_grace=5.0, create_streams=true))]
    fn connect<'py>(
        py: Python<'py>,
        nats_url: String,
        caller: &str,
        caller_grace: Option<f64>,
        answer_grace: f64,
        create_streams: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut options = ClientOptions::new(nats_url)
            .caller(caller)
            .map_err(|e| PyValueError::new_err(format!("caller: {e}")))?;
        options.caller_grace = caller_grace
            .map(|g| seconds("caller_grace", g))
            .transpose()?;
        options.answer_grace = seconds("answer_grace", answer_grace)?;
        options.create_streams = create_streams;
        let caller = caller.to_owned();
        future_into_py(py, async move {
            let client = Client::connect(options).await.map_err(error::client)?;
            Ok(PyClient { client, caller })
        })
    }

    /// Runs `tasks` as one job; its results in input order.
    fn fanout<'py>(
        &self,
        py: Python<'py>,
        tasks: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let tasks = self::tasks(tasks)?;
        let client = self.client.clone();
        future_into_py(py, async move {
            let results = client.fanout(tasks).await.map_err(error::client)?;
            Python::attach(|py| result::results(py, &results))
        })
    }

    /// Submits `tasks` as one job; an awaitable of its `Job`.
    #[pyo3(signature = (tasks, *, max_concurrency=16, deadline=30.0, policy="all"))]
    fn submit<'py>(
        &self,
        py: Python<'py>,
        tasks: &Bound<'py, PyAny>,
        max_concurrency: u32,
        deadline: f64,
        policy: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let job = Job::new(self::tasks(tasks)?)
            .max_concurrency(max_concurrency)
            .deadline(seconds("deadline", deadline)?)
            .policy(parse_policy(policy)?);
        let client = self.client.clone();
        future_into_py(py, async move {
            let handle = client.submit(job).await.map_err(error::client)?;
            Ok(PyJob::new(handle))
        })
    }

    /// The tools the fleet serves (name, description, parameters), from
    /// the workers that answer within `listen` seconds.
    #[pyo3(signature = (listen=0.5))]
    fn tools<'py>(&self, py: Python<'py>, listen: f64) -> PyResult<Bound<'py, PyAny>> {
        let listen = seconds("listen", listen)?;
        let client = self.client.clone();
        answered(py, async move { client.tools(listen).await })
    }

    /// The live workers (id, tools, concurrency, in flight, ...).
    #[pyo3(signature = (listen=0.5))]
    fn workers<'py>(&self, py: Python<'py>, listen: f64) -> PyResult<Bound<'py, PyAny>> {
        let listen = seconds("listen", listen)?;
        let client = self.client.clone();
        answered(py, async move { client.workers(listen).await })
    }

    /// Runs an OpenAI assistant message's `tool_calls` as one job and
    /// returns one `role: "tool"` message per call, in order.
    fn answer_openai<'py>(
        &self,
        py: Python<'py>,
        tool_calls: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let calls: Vec<ToolCall> = depythonize("tool_calls", tool_calls)?;
        let client = self.client.clone();
        answered(py, async move { client.answer_openai(&calls).await })
    }

    /// Runs Anthropic `tool_use` blocks as one job and returns one
    /// `tool_result` block per use, in order.
    fn answer_anthropic<'py>(
        &self,
        py: Python<'py>,
        tool_uses: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let uses: Vec<ToolUse> = depythonize("tool_uses", tool_uses)?;
        let client = self.client.clone();
        answered(py, async move { client.answer_anthropic(&uses).await })
    }

    /// Sends what is buffered and closes the connection.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(
            py,
            async move { client.close().await.map_err(error::client) },
        )
    }

    /// The caller id jobs are submitted as.
    #[getter]
    fn caller(&self) -> &str {
        &self.caller
    }
}

/// `all`, `fail_fast`, `first_ok` or `quorum:N`.
fn parse_policy(text: &str) -> PyResult<Policy> {
    let quorum = text.strip_prefix("quorum:").map(str::parse::<u32>);
    match (text, quorum) {
        ("all", _) => Ok(Policy::All),
        ("fail_fast", _) => Ok(Policy::FailFast),
        ("first_ok", _) => Ok(Policy::FirstOk),
        (_, Some(Ok(n))) => Ok(Policy::Quorum(n)),
        _ => Err(PyValueError::new_err(format!(
            "policy must be \"all\", \"fail_fast\", \"first_ok\" or \"quorum:N\", not {text:?}"
        ))),
    }
}

/// A Python object as a serde type; `field` names it in the error.
fn depythonize<T: serde::de::DeserializeOwned>(
    field: &str,
    object: &Bound<'_, PyAny>,
) -> PyResult<T> {
    pythonize::depythonize(object)
        .map_err(|e| pyo3::exceptions::PyTypeError::new_err(format!("{field}: {e}")))
}

/// An awaitable of what `answer` gives, as Python lists and dicts.
fn answered<'py, T>(
    py: Python<'py>,
    answer: impl std::future::Future<Output = Result<T, toolfan::ClientError>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: serde::Serialize + Send + 'static,
{
    future_into_py(py, async move {
        let answer = answer.await.map_err(error::client)?;
        Python::attach(|py| Ok(pythonize::pythonize(py, &answer)?.unbind()))
    })
}
