"""The deploy rehearsal: build the real images and play `gitops/<env>/` in real containers."""
