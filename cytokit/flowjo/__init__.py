"""FlowJo workspaces: read FlowJo 10 ``.wsp`` (FlowJo 9 and FACSDiva XML too) into the neutral gate hierarchy, apply it,
write FlowJo 10 workspaces."""
from .model import FlowJoSample, FlowJoWorkspace
from .apply import workspace_counts
from .diva import read_diva
from .flowjo9 import read_flowjo9
from .reader import is_workspace, read_workspace
from .writer import WorkspaceEntry, workspace_bytes, write_workspace

__all__ = ["FlowJoSample", "FlowJoWorkspace", "WorkspaceEntry", "is_workspace", "read_diva", "read_flowjo9", "read_workspace", "workspace_bytes",
           "workspace_counts", "write_workspace"]
