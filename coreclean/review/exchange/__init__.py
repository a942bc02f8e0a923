"""What leaves coreclean for the tools where labels are fixed and models are trained, and what comes back.

:mod:`.cleaned` writes the dataset after the review decisions (a folder or ``.npy`` arrays plus a manifest);
:mod:`.queues` names the review queues an export covers; :mod:`.label_studio` writes Label Studio tasks and reads
its JSON export back into the review log.
"""
