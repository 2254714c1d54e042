//! What audit lines carry of the pod beyond its name: the workload labels chosen in config and
//! its owner, each bounded so that no pod can make a line long.

use serde::ser::{SerializeMap, SerializeStruct};
use serde::Serialize;

use crate::index::{Labels, Owner};

pub use crate::index::MAX_LABEL_VALUE;
/// The longest owner kind kept in a line.
const MAX_OWNER_KIND: usize = 63;
/// The longest owner name kept in a line: Kubernetes' limit for object names.
pub const MAX_OWNER_NAME: usize = 253;

/// `text` cut to at most `max` bytes (at a character boundary), with `…` when it was cut: what a
/// pod's labels or owner can put into an audit line is bounded.
pub fn bounded(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    format!("{}…", &text[..text.floor_char_boundary(max)]).into()
}

/// The labels of a pod that audit lines carry: of `keys` (`[audit] workload_labels`, in that
/// order), those the pod has, values [`bounded`].
#[derive(Debug, Clone, Copy)]
pub struct WorkloadLabels<'a> {
    pub keys: &'a [String],
    pub labels: &'a Labels,
}

impl<'a> WorkloadLabels<'a> {
    /// The carried keys and their (bounded) values.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, std::borrow::Cow<'a, str>)> + 'a {
        let labels = self.labels;
        self.keys.iter().filter_map(move |key| {
            labels
                .get(key)
                .map(|value| (key.as_str(), bounded(value, MAX_LABEL_VALUE)))
        })
    }
}

impl Serialize for WorkloadLabels<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.iter() {
            map.serialize_entry(key, &value)?;
        }
        map.end()
    }
}

/// A pod's owner as audit lines show it, kind and name [`bounded`].
#[derive(Debug, Clone, Copy)]
pub struct OwnerOf<'a>(pub &'a Owner);

impl OwnerOf<'_> {
    pub(super) fn kind(&self) -> std::borrow::Cow<'_, str> {
        bounded(&self.0.kind, MAX_OWNER_KIND)
    }

    pub(super) fn name(&self) -> std::borrow::Cow<'_, str> {
        bounded(&self.0.name, MAX_OWNER_NAME)
    }
}

impl Serialize for OwnerOf<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut owner = serializer.serialize_struct("Owner", 2)?;
        owner.serialize_field("kind", &self.kind())?;
        owner.serialize_field("name", &self.name())?;
        owner.end()
    }
}
