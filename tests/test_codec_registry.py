"""The codec registry finds every codec of the package by its module, with no list to keep in step."""

import inspect

from h3r_theory import codecs
from h3r_theory.codecs import HeatmapCodec


def test_every_named_codec_class_of_the_package_is_registered():
    declared = {
        cls.name
        for module in {cls.__module__ for cls in codecs.CODECS.values()}
        for _, cls in inspect.getmembers(__import__(module, fromlist=["_"]), inspect.isclass)
        if issubclass(cls, HeatmapCodec) and cls is not HeatmapCodec and "name" in vars(cls)
    }
    assert declared == set(codecs.available())
    assert {"randomized_rounding", "argmax", "gaussian", "dark", "udp", "soft_argmax"} <= declared


def test_a_subclass_outside_the_package_is_not_registered():
    class Renamed(codecs.Argmax):
        name = "renamed_argmax"

    assert "renamed_argmax" not in codecs.available()
    assert codecs.build("argmax", (64, 64), (16, 16)).__class__ is codecs.Argmax
