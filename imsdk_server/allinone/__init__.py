"""The all-in-one server: every server role in one process, on the embedded defaults or on real backends.

:class:`AllInOne` starts the chosen roles in order (registered → linked → ready) and stops them in reverse
with the not-ready drain; ``imsdk serve <role|all>`` is built on it. :class:`AllInOneConfig` holds the
options every role shares (``--http``, ``--tcp``, ``--data``, the backend URLs); :func:`load_serve_config`
reads them and the per-component tables from a TOML file. :class:`AccessWatch` links a presence view to every
access server in the registry and gives the links' verdicts to its jitter recognition. See
``docs/deployment.md``.
"""

from imsdk_server.allinone._config import COMPONENT_TABLES as COMPONENT_TABLES
from imsdk_server.allinone._config import AllInOneConfig as AllInOneConfig
from imsdk_server.allinone._config import component_config as component_config
from imsdk_server.allinone._config import load_serve_config as load_serve_config
from imsdk_server.allinone._http import PathDispatch as PathDispatch
from imsdk_server.allinone._server import ROLES as ROLES
from imsdk_server.allinone._server import AllInOne as AllInOne
from imsdk_server.allinone._server import StartupError as StartupError
from imsdk_server.allinone._watch import AccessWatch as AccessWatch

__all__ = [
    "COMPONENT_TABLES",
    "ROLES",
    "AccessWatch",
    "AllInOne",
    "AllInOneConfig",
    "PathDispatch",
    "StartupError",
    "component_config",
    "load_serve_config",
]
