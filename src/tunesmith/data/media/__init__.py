"""Images and videos of multimodal data: reading (files.py), LLaMA-Factory's settings and regularisation
(settings.py, regularize.py) and the model-family plugins that expand placeholders and build model inputs
(plugin.py). The route without torchvision is described at the top of plugin.py."""

from .files import MediaError, Video, VideoInfo, image_size, load_image, load_video, probe_video, sample_indices
from .plugin import SUPPORTED_PLUGINS, VisionPlugin, get_plugin
from .settings import MediaSettings

__all__ = ["SUPPORTED_PLUGINS", "MediaError", "MediaSettings", "Video", "VideoInfo", "VisionPlugin", "get_plugin",
           "image_size", "load_image", "load_video", "probe_video", "sample_indices"]
