"""URL-encoded form bodies, parsed with the standard library (no python-multipart needed: the
console's forms carry a few short text fields and never a file)."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request

from tierwise.service.errors import InvalidInput

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELD_CHARS = 4000


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields (the last value of a repeated one); a body of another type, or one that is
    not UTF-8, is refused naming the header or the body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM_TYPE:
        raise InvalidInput(f"send the form as {FORM_TYPE}, not {ctype or 'no content type'}",
                           field="Content-Type")
    try:
        text = (await request.body()).decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("the form body is not valid UTF-8 url-encoded text", field="body") from exc
    out = {name: values[-1] for name, values in fields.items()}
    for name, value in out.items():
        if len(value) > MAX_FIELD_CHARS:
            raise InvalidInput(f"{name} has {len(value)} characters; the limit is {MAX_FIELD_CHARS}", field=name)
    return out


def required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise InvalidInput(f"{name} is required", field=name)
    return value
