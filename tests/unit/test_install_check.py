"""The runtime's install check spells our object names as the code generator does."""

from __future__ import annotations

import dataclasses

from pgmq_codegen import render
from pgmq_runtime import install_check
from pgmq_runtime import object_names as objects
from pgmq_runtime.config import PgmqNotifyConfig


def test_names_and_marker_agree_with_the_generator():
    for config in (PgmqNotifyConfig(), dataclasses.replace(PgmqNotifyConfig(), schema="Odd Schema")):
        assert install_check.meta_trigger_names(config) == (
            objects.meta_trigger_name(config),
            objects.meta_drop_trigger_name(config),
        )
        assert install_check.message_trigger_name(config) == objects.message_trigger_name(config)
        # The check reads markers with object_names.parse_marker.
        marker = objects.parse_marker(render.marker(config))
        assert marker is not None and marker.fingerprint == config.fingerprint()
    catalogued = {spec.name for spec in objects.FUNCTIONS}
    checked = install_check._ALWAYS_FUNCTIONS + install_check._TRIGGER_FUNCTIONS + install_check._WRAPPER_FUNCTIONS
    assert set(checked) <= catalogued
