"""Plain helpers the tests import as ordinary functions: workspaces on the shared sample, servers, browsers."""
