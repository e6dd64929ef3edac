# SPDX-License-Identifier: GPL-2.0-or-later
#
# Sphinx configuration for a quick, warnings-as-errors build of QEMU's
# system manual (docs/system) only, used by scripts/docs.sh.
#
# It runs QEMU's own docs/conf.py (its extensions, theme and settings) and
# then narrows the build to docs/system: the other manuals are excluded, so
# the slow generated references (QAPI, kernel-doc) are not built.  Links
# from the system manual into an excluded manual are still checked: they
# resolve only if the label or document exists in the source tree, and
# then point at the published manual.  Everything else Sphinx warns about
# stays an error.
#
# Set QEMU_DOCDIR to the docs/ directory of the QEMU tree.

import os
import re

from docutils import nodes
from sphinx.util import logging

try:
    qemu_docdir = os.path.abspath(os.environ["QEMU_DOCDIR"])
except KeyError:
    raise RuntimeError("QEMU_DOCDIR is not set: run scripts/docs.sh")

_qemu_conf = os.path.join(qemu_docdir, "conf.py")
with open(_qemu_conf, encoding="utf-8") as _f:
    exec(compile(_f.read(), _qemu_conf, "exec"))

# The manual this build covers; every other top-level entry is excluded.
_manual = "system"
_published = "https://www.qemu.org/docs/master/"

master_doc = _manual + "/index"
_outside = sorted(e for e in os.listdir(qemu_docdir) if e != _manual)
# QEMU's conf.py defined these; extend them.
exclude_patterns = list(globals()["exclude_patterns"])
for _e in _outside:
    exclude_patterns += [_e, _e + "/**"]

# A toctree entry that points into an excluded manual exists in the full
# manual (excluded means found); a missing document is still an error.
suppress_warnings = list(globals()["suppress_warnings"]) + ["toc.excluded"]

_label_re = re.compile(r"^\.\.\s+_([^:`]+|`[^`]+`):\s*$")


def _outside_targets():
    """Map the labels and documents of the excluded manuals to docnames."""
    labels, docs = {}, set()
    for top in _outside:
        root = os.path.join(qemu_docdir, top)
        paths = [root] if os.path.isfile(root) else [
            os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
        for path in paths:
            if not path.endswith(".rst"):
                continue
            doc = os.path.relpath(path, qemu_docdir)[:-len(".rst")]
            docs.add(doc)
            with open(path, encoding="utf-8") as f:
                for line in f:
                    m = _label_re.match(line)
                    if m:
                        name = " ".join(m.group(1).strip("`").split()).lower()
                        labels.setdefault(name, doc)
    return labels, docs


def _resolve_outside(app, env, node, contnode):
    """Resolve a reference into an excluded manual, if its target exists."""
    if node.get("refdomain") not in ("std", None, ""):
        return None
    reftype = node.get("reftype")
    target = node.get("reftarget", "")
    labels, docs = _targets
    url = None
    if reftype in ("ref", "any"):
        name = " ".join(target.split()).lower()
        if name in labels:
            url = "%s%s.html#%s" % (_published, labels[name],
                                    nodes.make_id(name))
    if url is None and reftype in ("doc", "any"):
        base = os.path.dirname(node.get("refdoc", ""))
        doc = os.path.normpath(target.lstrip("/") if target.startswith("/")
                               else os.path.join(base, target))
        if doc in docs:
            url = "%s%s.html" % (_published, doc)
    if url is None:
        return None
    ref = nodes.reference("", "", internal=False, refuri=url)
    ref += contnode
    return ref


_targets = _outside_targets()


def setup(app):
    logging.getLogger(__name__).info(
        "docs-conf: building %s/ only; %d labels in other manuals",
        _manual, len(_targets[0]))
    app.connect("missing-reference", _resolve_outside)
