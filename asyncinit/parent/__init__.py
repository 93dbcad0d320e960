"""The parent side: compile, launch through the fork server, drive the init."""
