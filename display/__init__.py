"""The lobby call screen and its sound."""
