"""The serving applier: the post-install/post-upgrade hook Job of the byo node pool modes (nap, aks).

KAITO's admission webhook refuses a byo InferenceSet while no Ready node matching its label
selector carries the GPU labels, and KAITO never creates a Pending pod in byo mode, so nothing would
bring that node up (README, "How a path comes up"). The applier creates a per-path node anchor that
makes the node autoscaler add the path's node, applies the InferenceSet once KAITO will admit it,
and removes the anchor once a vLLM pod holds the node.

With --teardown it deletes the release's InferenceSets instead, each once a node KAITO needs for
the deletion is up (the chart's pre-upgrade and pre-delete Jobs with serving.keepOnUninstall=false).

It runs in the gateway image, which has neither kubectl nor a shell: the standard library and
PyYAML only. Modules: kube (the API client), plan (what the chart asks for), cluster (what the
applier reads and writes, in its own terms), drift (whether a live InferenceSet already is what
the chart asks for), converge (the apply loop), teardown (the delete loop), diagnose (what a
timeout prints), log (timestamped lines).
"""
