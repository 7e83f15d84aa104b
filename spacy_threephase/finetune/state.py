"""Phase 3's resumable state: the pipeline's weights and thinc's optimizer state, named the
same way in every process.

thinc keys optimizer state by (node id, parameter name), and node ids come from a
process-wide counter, so they differ between a killed run and the run that resumes it. Here
each parameter is named by its component, the position of its node in `model.walk()`, the
shim (the PyTorch model inside spacy-transformers) where there is one, and its own name.
"""

from typing import Any, Dict, Iterator, Tuple

from thinc.api import Model, get_current_ops
from thinc.backends import get_array_ops

Key = Tuple[int, str]

_SCALARS = ("learn_rate", "b1", "b2", "eps", "L2", "grad_clip")


def pipeline_models(nlp) -> Iterator[Tuple[str, Model]]:
    """(component name, thinc model) for every pipeline component that has one."""
    for name, proc in nlp.pipeline:
        model = getattr(proc, "model", None)
        if isinstance(model, Model):
            yield name, model


def torch_module(shim):
    """The PyTorch module inside a thinc shim (spacy-transformers' transformer), or None."""
    import torch

    module = getattr(shim, "_model", None)
    return module if isinstance(module, torch.nn.Module) else None


def param_nodes(nlp) -> Iterator[Tuple[str, Model]]:
    """(stable prefix "component/position", node) for every node of every component's model."""
    for comp, model in pipeline_models(nlp):
        for i, node in enumerate(model.walk()):
            yield f"{comp}/{i}", node


def shim_modules(nlp) -> Iterator[Tuple[str, Any, Any]]:
    """(stable name "component/position/shimN", shim, PyTorch module) for every shim that holds
    a PyTorch model."""
    for prefix, node in param_nodes(nlp):
        for j, shim in enumerate(node.shims):
            module = torch_module(shim)
            if module is not None:
                yield f"{prefix}/shim{j}", shim, module


def parameter_names(nlp) -> Dict[Key, str]:
    """thinc optimizer key -> a name that is stable across processes."""
    names: Dict[Key, str] = {}
    for prefix, node in param_nodes(nlp):
        for param in node.param_names:
            names.setdefault((node.id, param), f"{prefix}/{param}")
    for key, shim, module in shim_modules(nlp):
        for param, _ in module.named_parameters():
            names.setdefault((shim.id, param), f"{key}/{param}")
    return names


def get_weights(nlp) -> Dict[str, Any]:
    """Every parameter of the pipeline (thinc arrays as numpy, PyTorch state dicts on the CPU)."""
    weights: Dict[str, Any] = {}
    for prefix, node in param_nodes(nlp):
        for param in node.param_names:
            if node.has_param(param):
                value = node.get_param(param)
                weights[f"{prefix}/{param}"] = get_array_ops(value).to_numpy(value).copy()
    for key, _shim, module in shim_modules(nlp):
        weights[key] = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
    return weights


def set_weights(nlp, weights: Dict[str, Any]) -> None:
    ops = get_current_ops()
    seen = set()
    for prefix, node in param_nodes(nlp):
        for param in node.param_names:
            key = f"{prefix}/{param}"
            if key in weights:
                node.set_param(param, ops.asarray(weights[key]))
                seen.add(key)
    for key, _shim, module in shim_modules(nlp):
        if key in weights:
            module.load_state_dict(weights[key])
            seen.add(key)
    missing = sorted(set(weights) - seen)
    if missing:
        raise ValueError(f"the checkpoint has weights the pipeline does not: {', '.join(missing[:5])}")


def get_optimizer_state(optimizer, names: Dict[Key, str]) -> Dict[str, Any]:
    unknown = [k for k in list(optimizer.mom1) + list(optimizer.nr_update) if k not in names]
    if unknown:
        raise ValueError(f"optimizer state for parameters outside the pipeline: {unknown[:5]}")

    def arrays(table):
        return None if table is None else {names[k]: get_array_ops(v).to_numpy(v).copy() for k, v in table.items()}

    return {
        "mom1": arrays(optimizer.mom1),
        "mom2": arrays(optimizer.mom2),
        "averages": arrays(optimizer.averages),
        "nr_update": {names[k]: n for k, n in optimizer.nr_update.items()},
        "last_seen": {names[k]: n for k, n in optimizer.last_seen.items() if k in names},
        "scalars": {attr: getattr(optimizer, attr) for attr in _SCALARS},
    }


def set_optimizer_state(optimizer, state: Dict[str, Any], names: Dict[Key, str]) -> None:
    """Restore into an optimizer built from the same config (its schedules already advanced)."""
    ops = get_current_ops()
    keys = {name: key for key, name in names.items()}
    for name in list(state["nr_update"]) + list(state["mom1"]):
        if name not in keys:
            raise ValueError(f"the checkpoint's optimizer has a parameter the pipeline does not: {name}")

    def arrays(table):
        return {keys[n]: ops.asarray(v) for n, v in table.items()}

    optimizer.mom1.clear()
    optimizer.mom1.update(arrays(state["mom1"]))
    optimizer.mom2.clear()
    optimizer.mom2.update(arrays(state["mom2"]))
    if optimizer.averages is not None and state["averages"] is not None:
        optimizer.averages.clear()
        optimizer.averages.update(arrays(state["averages"]))
    optimizer.nr_update.clear()
    optimizer.nr_update.update({keys[n]: v for n, v in state["nr_update"].items()})
    optimizer.last_seen.clear()
    optimizer.last_seen.update({keys[n]: v for n, v in state["last_seen"].items() if n in keys})
    for attr, value in state["scalars"].items():
        setattr(optimizer, attr, value)
