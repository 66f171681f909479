"""Lets accelerate shard with FSDP on CPU processes, for tests/test_launch.py's FSDP comparisons; active only
where OFFLINE_ARENA_TEST_FSDP_ON_CPU=1 (Python imports `sitecustomize` from PYTHONPATH at start-up, so a
test puts this folder there for the ranks it launches).

accelerate 1.15 (state.py, `AcceleratorState.__init__`) turns an FSDP plugin into `DistributedType.FSDP` only
in its branch for GPUs and other accelerators; for MULTI_CPU (gloo) it drops the plugin and the model is
wrapped in DDP. torch's FSDP2 itself runs on CPU with gloo (`fully_shard` on a CPU device mesh). So this sets
what accelerate sets on a GPU, and nothing else: the distributed type FSDP and the plugin, on the
AcceleratorState and on the PartialState (as the end of `AcceleratorState.__init__` does, so that a later
`AcceleratorState()` copies FSDP back, not MULTI_CPU). Sharding, training and gathering then run accelerate's
and torch's own code (`fsdp2_prepare_model`, `fully_shard`, `get_state_dict`)."""

import os

if os.environ.get("OFFLINE_ARENA_TEST_FSDP_ON_CPU") == "1":
    import accelerate.state as _state

    _original_init = _state.AcceleratorState.__init__

    def _init_with_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):
        _original_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == _state.DistributedType.MULTI_CPU:
            self.distributed_type = _state.DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            _state.PartialState._shared_state["distributed_type"] = _state.DistributedType.FSDP

    _state.AcceleratorState.__init__ = _init_with_fsdp_on_cpu
