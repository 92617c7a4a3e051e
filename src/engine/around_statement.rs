//! A plan node around one federation node, for one run of a plan: its
//! properties and child are the statement's; what it adds is how it runs
//! the statement ([`Around`]) — recorded for `analyze`
//! (`statement_log.rs`), polled as the request's caller (`as_caller.rs`).

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};

use super::explain;

/// What a node around a statement does when it runs.
pub trait Around: fmt::Debug + Send + Sync + 'static {
    /// The node's name in a plan.
    const NAME: &'static str;

    /// What the plan shows of it besides its name.
    fn describe(&self) -> String {
        String::new()
    }

    /// Runs the statement's `partition` its way.
    fn execute(
        &self,
        statement: &Arc<dyn ExecutionPlan>,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream>;
}

/// `plan` with each federation node inside the node `around` makes for it.
pub fn wrap_statements<A: Around>(
    plan: Arc<dyn ExecutionPlan>,
    mut around: impl FnMut(&Arc<dyn ExecutionPlan>) -> A,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_down(|node| {
        if node.name() != explain::FEDERATION_NODE {
            return Ok(Transformed::no(node));
        }
        let wrapped: Arc<dyn ExecutionPlan> = Arc::new(AroundStatement {
            around: Arc::new(around(&node)),
            statement: node,
        });
        Ok(Transformed::new(wrapped, true, TreeNodeRecursion::Jump))
    })
    .map(|t| t.data)
}

#[derive(Debug)]
struct AroundStatement<A> {
    statement: Arc<dyn ExecutionPlan>,
    around: Arc<A>,
}

impl<A: Around> DisplayAs for AroundStatement<A> {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let described = self.around.describe();
        match t {
            DisplayFormatType::TreeRender => f.write_str(&described),
            _ if described.is_empty() => f.write_str(A::NAME),
            _ => write!(f, "{}: {described}", A::NAME),
        }
    }
}

impl<A: Around> ExecutionPlan for AroundStatement<A> {
    fn name(&self) -> &str {
        A::NAME
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.statement.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.statement]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(statement) if children.is_empty() => Ok(Arc::new(Self {
                statement,
                around: self.around.clone(),
            })),
            _ => Err(DataFusionError::Internal(format!(
                "{} has one input: its statement",
                A::NAME
            ))),
        }
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.around.execute(&self.statement, partition, context)
    }
}
