import streamlit as st

from coreclean.analysis import explore_queries as explore
from coreclean.data.images import ImageUnavailable
from ui import audit_view, explore_grid, figures, review_grid, sample_facts, selection, state, widgets

analysis = state.current()
names = state.labels(analysis)
st.title("Sample")
split, index = explore_grid.sample_picker(analysis)
labels = analysis.y_train if split == "train" else analysis.y_test
label = int(labels[index])
predicted = int((analysis.pred_train if split == "train" else analysis.pred_test)[index])

left, right = st.columns([2, 3])
with left:
    text = widgets.plain(f"{split} #{index} · label {names[label]} · pred {names[predicted]}")
    try:
        st.image(widgets.tile_image(analysis, index, split, 360), caption=text, width=360)
    except ImageUnavailable as err:
        st.info(f"{text}\n\nimage unavailable: {err}")
with right:
    st.subheader("Top classes")
    classes, probabilities = explore.top_classes(analysis, index, 5, split)
    st.plotly_chart(figures.probability_bars([names[c] for c in classes], probabilities), key="top_classes")
    st.subheader("Why it is flagged")
    summary = decision = None
    written = [widgets.plain(name) for name in names]  # the lines below are Markdown: names as plain text
    if split == "train":
        summary = review_grid.reasons(analysis, [index])[index].summary(written)
        decision = state.current_log().current().get(index)
    lines = sample_facts.why_flagged(analysis, index, split, written, summary=summary, decision=decision)
    st.markdown("\n".join(f"- {line}" for line in lines))
    suggestion = audit_view.suggestion_line(analysis, index, written) if split == "train" else None
    if suggestion:
        st.markdown(suggestion)

if not explore.has_exploration(analysis):
    st.info("This analysis was built before the exploration stage: rebuild it to see nearest neighbours.")
    st.stop()
neighbors, similarities = explore.neighbors_of(analysis, index, split)
similar = dict(zip([int(j) for j in neighbors], [float(s) for s in similarities]))
head = st.columns([3, 2])
head[0].subheader("Nearest neighbours (training set)")
anchor = index if split == "train" else int(neighbors[0])
head[1].page_link("pages/map.py", label="More like this: review them on the map", icon=":material/scatter_plot:",
                  query_params=explore_grid.link_params(sel=selection.near_selection(anchor), colour="label"))
widgets.image_grid(analysis, neighbors, columns=5, details=False,
                   caption=lambda j: f"#{j} · {names[analysis.y_train[j]]} · sim {similar[j]:.3f}",
                   footer=lambda j: st.button("details", key=f"open_{j}", icon=":material/info:", type="tertiary",
                                              on_click=explore_grid.open_sample, args=(j,)))
