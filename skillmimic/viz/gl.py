"""Headless OpenGL for MuJoCo offscreen rendering: EGL first, OSMesa as the fallback.

Why not ``mujoco.Renderer`` as is: it takes its GL backend from ``MUJOCO_GL`` at the time
``mujoco`` is first imported, which in this library happens long before anyone decides to
render (the simulator imports it). Here the backend is chosen when the first context is
made: ``MUJOCO_GL=egl|osmesa`` (or ``PYOPENGL_PLATFORM``) forces one; otherwise EGL is
tried (GPU or Mesa's software EGL; Debian ``libegl1`` + ``libegl-mesa0``), then OSMesa
(Debian ``libosmesa6``). PyOpenGL binds to one platform per process, so after a failed
attempt its modules are dropped before the next platform is tried.
"""

from __future__ import annotations

import importlib
import os
import sys

_CHOSEN: str | None = None
_ERRORS: dict[str, str] = {}
_HEADLESS = ("egl", "osmesa")
_INSTALL_HINT = {"egl": "Debian: apt-get install libegl1 libegl-mesa0",
                 "osmesa": "Debian: apt-get install libosmesa6"}


class GLUnavailable(RuntimeError):
    """No headless OpenGL backend could create a context on this machine."""


def _candidates() -> list[str]:
    for var in ("MUJOCO_GL", "PYOPENGL_PLATFORM"):
        want = os.environ.get(var, "").strip().lower()
        if want in _HEADLESS:
            return [want]
    if "OpenGL.platform" in sys.modules:      # PyOpenGL already bound (e.g. by a GLFW viewer)
        return []
    return list(_HEADLESS)


def _forget_pyopengl() -> None:
    for name in [m for m in sys.modules if m == "OpenGL" or m.startswith(("OpenGL.", "mujoco.egl", "mujoco.osmesa"))]:
        del sys.modules[name]
    os.environ.pop("PYOPENGL_PLATFORM", None)


def _make(backend: str, width: int, height: int):
    module = importlib.import_module(f"mujoco.{backend}")
    ctx = module.GLContext(width, height)
    ctx.make_current()
    return ctx


def create_context(width: int, height: int):
    """A current offscreen GL context of at least ``width`` x ``height``; the backend used is
    :func:`backend`. Raises :class:`GLUnavailable` naming what each backend said."""
    global _CHOSEN
    if _CHOSEN is not None:
        return _make(_CHOSEN, width, height)
    order = _candidates()
    if not order:
        raise GLUnavailable("PyOpenGL is already bound to a non-headless platform in this process "
                            f"({os.environ.get('PYOPENGL_PLATFORM') or 'default'}); render in a fresh "
                            "process or set MUJOCO_GL=egl before starting Python")
    for i, name in enumerate(order):
        try:
            ctx = _make(name, width, height)
        except Exception as e:                   # missing library, no device, bad platform ...
            _ERRORS[name] = f"{type(e).__name__}: {e}".strip()
            if i + 1 < len(order):
                _forget_pyopengl()
            continue
        _CHOSEN = name
        return ctx
    tried = "; ".join(f"{n}: {_ERRORS.get(n, '?')} ({_INSTALL_HINT[n]})" for n in order)
    raise GLUnavailable(f"no headless OpenGL backend works here -- {tried}")


def renderer_name() -> str:
    """GL_RENDERER of the current context (e.g. 'llvmpipe (LLVM 15...)'), '' if unknown."""
    try:
        from OpenGL import GL

        name = GL.glGetString(GL.GL_RENDERER)
    except Exception:
        return ""
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name or "")


def is_software(name: str) -> bool:
    """Mesa's CPU rasterisers: shadows, MSAA and reflections cost 5-20x there."""
    return any(k in name.lower() for k in ("llvmpipe", "softpipe", "swrast", "software"))


def backend() -> str | None:
    """The backend in use ('egl' or 'osmesa'), or None before the first context."""
    return _CHOSEN


def probe() -> tuple[str | None, str]:
    """(backend, message): try to make a 16x16 context; for tests and ``--info`` output."""
    try:
        ctx = create_context(16, 16)
    except GLUnavailable as e:
        return None, str(e)
    ctx.free()
    return _CHOSEN, f"headless OpenGL via {_CHOSEN}"


__all__ = ["GLUnavailable", "create_context", "backend", "probe", "renderer_name", "is_software"]
