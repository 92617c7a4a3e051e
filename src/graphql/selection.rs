//! A field's selection as the reads need it, owned: its name, response
//! key, arguments (variables substituted) and the fields under it that
//! the answer holds. Built once per root field from async-graphql's
//! `SelectionField` (whose every walk evaluates `@skip` / `@include` and
//! expands fragments again), or from a parsed document for a compiled
//! query (`compiled.rs`), so the reads work the same from either.

use async_graphql::parser::types::{Field, Selection};
use async_graphql::{Name, SelectionField, Value as GqlValue};

use crate::error::ApiError;

/// One selected field.
#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    pub name: Name,
    alias: Option<Name>,
    /// As given in the document, in its order.
    pub arguments: Vec<(Name, GqlValue)>,
    /// What is selected under it and the answer holds (fields `@skip` or
    /// `@include` leave out are not here), fragments spread in place.
    pub children: Vec<Selected>,
}

impl Selected {
    /// `field` and everything under it.
    pub fn of(field: &SelectionField<'_>) -> Result<Self, ApiError> {
        let arguments = field
            .arguments()
            .map_err(|e| ApiError::bad_request(e.message).at(field.name().to_string()))?;
        Ok(Self {
            name: Name::new(field.name()),
            alias: field.alias().map(Name::new),
            arguments,
            children: field
                .selection_set()
                .map(|child| Self::of(&child))
                .collect::<Result<_, _>>()?,
        })
    }

    /// `field` of a parsed document when it and everything under it need
    /// no request to be read: no variable, directive or fragment (`None`
    /// otherwise).
    pub fn of_document(field: &Field) -> Option<Self> {
        if !field.directives.is_empty() {
            return None;
        }
        let arguments = field
            .arguments
            .iter()
            .map(|(name, value)| Some((name.node.clone(), value.node.clone().into_const()?)))
            .collect::<Option<_>>()?;
        let children = field
            .selection_set
            .node
            .items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(child) => Self::of_document(&child.node),
                Selection::FragmentSpread(_) | Selection::InlineFragment(_) => None,
            })
            .collect::<Option<_>>()?;
        Some(Self {
            name: field.name.node.clone(),
            alias: field.alias.as_ref().map(|alias| alias.node.clone()),
            arguments,
            children,
        })
    }

    /// The key its answer goes under: the alias, else the name.
    pub fn key(&self) -> &str {
        self.alias.as_ref().unwrap_or(&self.name).as_str()
    }

    /// The argument `name`, if given.
    pub fn argument(&self, name: &str) -> Option<&GqlValue> {
        self.arguments
            .iter()
            .find(|(known, _)| known.as_str() == name)
            .map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;
    use async_graphql::parser::types::DocumentOperations;

    use super::*;

    fn root(query: &str) -> Option<Selected> {
        let document = parse_query(query).expect("parses");
        let DocumentOperations::Single(operation) = document.operations else {
            panic!("one operation");
        };
        let Selection::Field(field) = &operation.node.selection_set.node.items[0].node else {
            panic!("a field");
        };
        Selected::of_document(&field.node)
    }

    #[test]
    fn documents_become_selections_when_they_need_no_request() {
        let selected =
            root("{ k: x(limit: 2, where: {a: {_eq: \"q\"}}) { a r { b } } }").expect("plain");
        assert_eq!(selected.name.as_str(), "x");
        assert_eq!(selected.key(), "k");
        assert_eq!(selected.argument("limit"), Some(&GqlValue::from(2)));
        assert!(selected.argument("offset").is_none());
        assert_eq!(selected.children.len(), 2);
        assert_eq!(selected.children[1].key(), "r");
        assert_eq!(selected.children[1].children[0].name.as_str(), "b");
        // A variable, directive or fragment anywhere: the request decides.
        assert!(root("query($n: Int) { x { r(limit: $n) { b } } }").is_none());
        assert!(root("{ x { a @skip(if: true) } }").is_none());
        assert!(root("{ x { ... on x { a } } }").is_none());
        assert!(root("{ x { ...F } } fragment F on x { a }").is_none());
    }
}
