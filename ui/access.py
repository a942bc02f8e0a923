"""Optional access control for hosted use, configured by the operator in ``.streamlit/secrets.toml``."""
from __future__ import annotations

import hmac

import streamlit as st


def _secret(name: str):
    try:
        return st.secrets.get(name)
    except (FileNotFoundError, KeyError, AttributeError):  # no secrets.toml: local use, access control off
        return None
    except Exception:  # a malformed secrets file must not lock the operator out silently
        st.error("`.streamlit/secrets.toml` could not be parsed; access control is not configured.")
        st.stop()


def require_access() -> None:
    """An ``[auth]`` section enables Streamlit's OIDC login (``st.login``); a top-level ``password`` enables a
    shared password. With neither (the local default) everyone gets in."""
    if _secret("auth"):
        if not st.user.is_logged_in:
            st.title("coreclean")
            st.button("Log in", on_click=st.login, type="primary")
            st.stop()
        st.sidebar.button("Log out", on_click=st.logout)
        return
    password = _secret("password")
    if not password or st.session_state.get("access_granted"):
        return
    typed = st.text_input("Password", type="password", key="access_password")
    if typed and hmac.compare_digest(typed.encode(), str(password).encode()):
        st.session_state["access_granted"] = True
        st.session_state.pop("access_password", None)
        st.rerun()
    if typed:
        st.error("Wrong password.")
    st.stop()
