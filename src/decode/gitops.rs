//! Which GitOps object applied a write: Argo CD's tracking annotation, Flux's
//! kustomize-controller and helm-controller labels. They become attributes
//! of the intent the write starts, so a person can search for "everything
//! Application X did" (or Kustomization Y, HelmRelease Z).

use super::views::object::ObjectMeta;
use crate::core::record::GitOpsOrigin;

/// Argo CD (annotation tracking): `<app>:<group>/<kind>:<namespace>/<name>`.
const ARGO_TRACKING: &str = "argocd.argoproj.io/tracking-id";
/// Flux: the labels both controllers set on what they apply.
const FLUX_LABELS: &[(&str, &str)] = &[
    ("kustomize.toolkit.fluxcd.io/name", "flux.kustomization.name"),
    ("kustomize.toolkit.fluxcd.io/namespace", "flux.kustomization.namespace"),
    ("helm.toolkit.fluxcd.io/name", "flux.helmrelease.name"),
    ("helm.toolkit.fluxcd.io/namespace", "flux.helmrelease.namespace"),
];

/// The GitOps object the metadata names, if any. The maps are scanned as
/// text first: almost every object has neither, and parsing them for each
/// write would cost more than the rest of its decoding.
pub(super) fn origin(meta: &ObjectMeta<'_>) -> Option<Box<GitOpsOrigin>> {
    let mut attributes: Vec<(&'static str, Box<str>)> = Vec::new();
    if meta.annotations.is_some_and(|raw| raw.get().contains(ARGO_TRACKING))
        && let Some(tracking) = meta.annotation(ARGO_TRACKING)
    {
        if let Some((app, _)) = tracking.split_once(':') {
            attributes.push(("argocd.application", app.into()));
        }
        attributes.push(("argocd.tracking_id", tracking.into()));
    }
    if meta.labels.is_some_and(|raw| raw.get().contains("toolkit.fluxcd.io/")) {
        for (label, attribute) in FLUX_LABELS {
            if let Some(value) = meta.label(label) {
                attributes.push((attribute, value.into()));
            }
        }
    }
    (!attributes.is_empty()).then(|| Box::new(GitOpsOrigin { attributes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin_of(metadata: &str) -> Vec<(&'static str, String)> {
        let meta: ObjectMeta = serde_json::from_str(metadata).unwrap();
        origin(&meta).map(|o| o.attributes.into_iter().map(|(k, v)| (k, v.into())).collect()).unwrap_or_default()
    }

    #[test]
    fn argo_cd_and_flux_name_what_applied_the_object() {
        let argo = origin_of(
            r#"{"annotations": {"argocd.argoproj.io/tracking-id": "guestbook:apps/Deployment:default/web", "x": "y"}}"#,
        );
        assert_eq!(
            argo,
            [
                ("argocd.application", "guestbook".to_owned()),
                ("argocd.tracking_id", "guestbook:apps/Deployment:default/web".to_owned())
            ]
        );
        let flux = origin_of(
            r#"{"labels": {"app": "web", "kustomize.toolkit.fluxcd.io/name": "apps",
                           "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}}"#,
        );
        assert_eq!(
            flux,
            [
                ("flux.kustomization.name", "apps".to_owned()),
                ("flux.kustomization.namespace", "flux-system".to_owned())
            ]
        );
        assert!(origin_of(r#"{"labels": {"app": "web"}, "annotations": {"note": "toolkit.fluxcd.io/"}}"#).is_empty());
    }
}
