import streamlit as st

from coreclean.analysis.labels import visible_classes
from ui import figures, selection, state, widgets

analysis = state.current()
names = state.labels(analysis)
st.title("Confusion")
pairs = analysis.pairs()[:500]
options = [selection.pair_label(p.true, p.predicted, names) for p in pairs]


def select_clicked_cell() -> None:
    picked = selection.pair_from_selection(st.session_state["confusion_chart"].selection)
    if picked is not None and selection.pair_label(*picked, names) in options:
        st.session_state["pair"] = selection.pair_label(*picked, names)
    elif picked is not None:
        st.session_state["empty_pair"] = selection.pair_label(*picked, names)


controls = st.columns([2, 1])
search = controls[0].text_input("Search classes", key="q", bind="query-params", placeholder="e.g. laptop")
top_n = analysis.n_classes
if analysis.n_classes > 30:
    top_n = controls[1].slider("Classes shown (most confused)", 5, min(100, analysis.n_classes), 30,
                               key="top", bind="query-params")
widgets.notice_invalid("pair", options)
pair = st.selectbox("Confusion pair (or click a cell)", options, key="pair", bind="query-params",
                    index=0 if options else None)
if st.session_state.pop("empty_pair", None):
    st.info("No test samples are confused that way; pick a coloured cell.")
selected = selection.parse_pair(pair, names)
visible = visible_classes(analysis.confusion, names, top_n=top_n, search=search)
if len(visible) == 0:
    st.warning(f"No class name contains “{search}”.")
else:
    st.plotly_chart(figures.confusion_figure(analysis.confusion, names, visible, selected), key="confusion_chart",
                    on_select=select_clicked_cell, selection_mode="points", width="content")

if selected:
    true, predicted = selected
    true_name, predicted_name = widgets.plain(names[true]), widgets.plain(names[predicted])  # names: plain text
    st.subheader(f"{true_name} predicted as {predicted_name}")
    confused = analysis.confused_test(true, predicted)
    st.write(f"**{len(confused)}** test samples of *{true_name}* were predicted *{predicted_name}*:")
    widgets.image_grid(analysis, confused[:12], split="test", columns=6,
                       caption=lambda i: f"test #{i} · p={analysis.p_pred_test[i]:.2f}")
    st.write(f"Most important training samples labelled *{predicted_name}*:")
    widgets.image_grid(analysis, analysis.ranked(predicted)[:12], columns=6,
                       caption=lambda i: f"#{i} · pred {names[analysis.pred_train[i]]} · "
                                         f"imp {analysis.class_importance[i]:.2f}")
