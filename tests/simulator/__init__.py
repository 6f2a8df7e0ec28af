"""Tests of the MAAS simulator, over real sockets."""
