"""Elastic search spaces and their weight-sharing supernets.

Space definitions (``<space>/space.py``) are pure Python; supernets, dynamic ops and
training import torch and are loaded only when used.
"""
