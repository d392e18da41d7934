"""Model families. Importing this package registers every family."""

from vidgen_tf.models import mocogan  # noqa: F401
from vidgen_tf.models import hmm  # noqa: F401
from vidgen_tf.models import dvdgan  # noqa: F401
from vidgen_tf.models import vgan  # noqa: F401
from vidgen_tf.models import tgan  # noqa: F401
from vidgen_tf.models import dcgan  # noqa: F401
from vidgen_tf.models import video_vae  # noqa: F401
from vidgen_tf.models import kvae  # noqa: F401
from vidgen_tf.models import video_diffusion  # noqa: F401
