"""coreclean dashboard: ``streamlit run dashboard.py`` (opens on the embedded digits demo)."""
import streamlit as st

import ui

st.set_page_config(page_title="coreclean", page_icon="🧹", layout="wide")
st.session_state["analysis"] = ui.select_source()

pages = [
    st.Page("pages/overview.py", title="Overview", icon="📊", url_path="overview", default=True),
    st.Page("pages/confusion.py", title="Confusion", icon="🔀", url_path="confusion"),
    st.Page("pages/importance.py", title="Importance", icon="📈", url_path="importance"),
    st.Page("pages/review.py", title="Review", icon="🔍", url_path="review"),
]
st.navigation(pages).run()
