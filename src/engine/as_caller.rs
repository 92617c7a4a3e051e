//! A query's source statements wait for their turn at a busy source as the
//! request's caller ([`crate::admission`]). The caller is a task-local of
//! the request's task, but DataFusion polls a statement's stream wherever
//! its plan puts it (a repartition's own task, say): each federation node
//! of a plan about to run is wrapped ([`AsCallerTurn`]) to be polled as the
//! caller the plan was made for.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use futures::{Stream, StreamExt};

use super::around_statement::{Around, wrap_statements};
use crate::admission;

/// `plan` with each federation node run as the current task's caller.
pub fn as_current_caller(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let caller = admission::current_caller();
    wrap_statements(plan, |_| AsCallerTurn(caller.clone()))
}

/// Runs a statement polled as its caller.
#[derive(Debug)]
struct AsCallerTurn(admission::Caller);

impl Around for AsCallerTurn {
    const NAME: &'static str = "AsCallerExec";

    fn execute(
        &self,
        statement: &Arc<dyn ExecutionPlan>,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let inner = admission::polled_as(&self.0, || statement.execute(partition, context))?;
        Ok(Box::pin(AsCaller {
            inner,
            caller: self.0.clone(),
        }))
    }
}

/// A statement's stream, polled as its caller.
struct AsCaller {
    inner: SendableRecordBatchStream,
    caller: admission::Caller,
}

impl Stream for AsCaller {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        admission::polled_as(&this.caller, || this.inner.poll_next_unpin(cx))
    }
}

impl RecordBatchStream for AsCaller {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::sync::Mutex;

    use datafusion::arrow::datatypes::Schema;
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
    use datafusion::physical_plan::collect;
    use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
    use datafusion::physical_plan::repartition::RepartitionExec;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use datafusion::physical_plan::{DisplayAs, DisplayFormatType, PhysicalExpr, PlanProperties};

    use super::*;
    use crate::engine::explain;

    /// Stands in for a federation node: notes the caller its stream is
    /// polled as.
    #[derive(Debug)]
    struct Probe {
        properties: Arc<PlanProperties>,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Probe {
        fn noting_into(seen: &Arc<Mutex<Vec<String>>>) -> Arc<dyn ExecutionPlan> {
            let schema = Arc::new(Schema::empty());
            Arc::new(Self {
                properties: Arc::new(PlanProperties::new(
                    EquivalenceProperties::new(schema),
                    Partitioning::UnknownPartitioning(1),
                    EmissionType::Incremental,
                    Boundedness::Bounded,
                )),
                seen: seen.clone(),
            })
        }
    }

    impl DisplayAs for Probe {
        fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "Probe")
        }
    }

    impl ExecutionPlan for Probe {
        fn name(&self) -> &str {
            explain::FEDERATION_NODE
        }

        fn properties(&self) -> &Arc<PlanProperties> {
            &self.properties
        }

        fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
            Vec::new()
        }

        fn with_new_children(
            self: Arc<Self>,
            _: Vec<Arc<dyn ExecutionPlan>>,
        ) -> Result<Arc<dyn ExecutionPlan>> {
            Ok(self)
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
        ) -> Result<TreeNodeRecursion> {
            Ok(TreeNodeRecursion::Continue)
        }

        fn execute(&self, _: usize, _: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
            let seen = self.seen.clone();
            let schema = self.properties.eq_properties.schema().clone();
            let empty = RecordBatch::new_empty(schema.clone());
            let rows = futures::stream::once(async move {
                seen.lock()
                    .unwrap()
                    .push(admission::current_caller().key().to_string());
                Ok(empty)
            });
            Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
        }
    }

    /// Runs `plan` from a task of its own (as a response body is), its
    /// repartition pulling the statement from yet another.
    async fn run_elsewhere(plan: Arc<dyn ExecutionPlan>) {
        tokio::spawn(collect(plan, Arc::new(TaskContext::default())))
            .await
            .unwrap()
            .unwrap();
    }

    /// The statement is polled as the caller the plan was made for, though
    /// DataFusion polls it in a task the request's caller never reached.
    #[tokio::test]
    async fn statements_run_as_the_caller_the_plan_was_made_for() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let plan = || -> Arc<dyn ExecutionPlan> {
            Arc::new(
                RepartitionExec::try_new(
                    Probe::noting_into(&seen),
                    Partitioning::RoundRobinBatch(2),
                )
                .unwrap(),
            )
        };
        let dashboard = admission::Caller::new(Arc::from("key:dashboard"));
        let (bare, carried) = admission::serve_as(dashboard, async {
            (plan(), as_current_caller(plan()).unwrap())
        })
        .await;
        run_elsewhere(bare).await;
        run_elsewhere(carried).await;
        assert_eq!(*seen.lock().unwrap(), ["", "key:dashboard"]);
    }
}
