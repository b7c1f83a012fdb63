"""Bringing images and annotations into the store: Open Images metadata, folders of files, dlib XML."""
