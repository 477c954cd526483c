"""The admin's upload form: a component with its manifest.toml, or one zip bundle."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from control_plane.plugins.models import PluginVersion
from control_plane.plugins.uploads import MAX_MANIFEST_BYTES
from fleet_common.components import MAX_COMPONENT_BYTES


class PluginVersionUploadForm(forms.ModelForm[PluginVersion]):
    """Checks only the shape of the upload; the upload service validates the contents."""

    component = forms.FileField(
        required=False, help_text="The .wasm component, as built by <code>device-host build</code>."
    )
    manifest_file = forms.FileField(
        required=False, label="manifest.toml", help_text="The plugin's manifest."
    )
    bundle = forms.FileField(
        required=False,
        help_text="Or instead: one .zip holding manifest.toml and the component it names.",
    )

    class Meta:
        model = PluginVersion
        fields: list[str] = []

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        component, manifest, bundle = (
            data.get(k) for k in ("component", "manifest_file", "bundle")
        )
        if bundle and (component or manifest):
            raise ValidationError("Upload either a bundle or a component with its manifest.")
        if not bundle and not (component and manifest):
            raise ValidationError(
                "Upload the component together with its manifest.toml, or one zip bundle."
            )
        for field, limit in (
            ("component", MAX_COMPONENT_BYTES),
            ("bundle", MAX_COMPONENT_BYTES + MAX_MANIFEST_BYTES),
            ("manifest_file", MAX_MANIFEST_BYTES),
        ):
            upload = data.get(field)
            if upload is not None and upload.size > limit:
                self.add_error(field, f"{upload.size} bytes is more than the {limit} allowed.")
        if manifest:
            try:
                data["manifest_text"] = manifest.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("manifest_file", "manifest.toml must be UTF-8 text.")
        return data

    def upload_arguments(self) -> dict[str, Any]:
        """Keyword arguments for `upload_plugin_version`, read from the uploaded files."""
        data = self.cleaned_data
        return {
            "component": data["component"].read() if data.get("component") else None,
            "manifest_text": data.get("manifest_text"),
            "bundle": data["bundle"].read() if data.get("bundle") else None,
        }
