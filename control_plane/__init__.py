"""The fleet's control plane: enrolls devices, signs approved plugin versions, rolls them out."""
