"""Signed delivery of plugin releases: statement formats shared by the control plane and devices."""
