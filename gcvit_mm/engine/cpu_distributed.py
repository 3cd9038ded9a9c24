"""mmengine's DDP wrapper for models on the CPU."""
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """:class:`mmengine.model.MMDistributedDataParallel` for a model on the
    CPU (gloo process group): mmengine's Runner passes
    ``device_ids=[LOCAL_RANK]``, which torch's DDP rejects for a CPU module,
    so they are dropped. Select it with ``model_wrapper_cfg=dict(
    type='CPUDistributedDataParallel')``."""

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)
