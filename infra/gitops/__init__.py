"""The GitOps renderer: one typed catalog of the bundled apps -> `gitops/<env>/` for every stack.

`catalog` holds what each app needs (sizing, resources, probes, per-env image tags from
`images.json`), `manifests/` holds small builders (one per concern), `renderer` turns a catalog and
a stack config into files, and `validate` cross-checks a rendered tree.
"""
