"""The item list view: model/view rows, heart clicks, space and Enter."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from .item_delegate import ItemDelegate
from .item_model import ItemListModel, ItemRole

__all__ = ["TOGGLE_KEYS", "ItemListView"]

TOGGLE_KEYS = (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter)


class ItemListView(QListView):
    """Emits ``toggleRequested(item_id)`` for a heart click, or space or Enter on the
    focused row."""

    toggleRequested = Signal(str)

    def __init__(self, model: ItemListModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("itemList")
        self.setModel(model)
        self.delegate = ItemDelegate(self)
        self.setItemDelegate(self.delegate)
        # Every row has the same height: lets Qt lay out 1,000 rows without asking each.
        self.setUniformItemSizes(True)
        self.setMouseTracking(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Items")
        self.delegate.heartClicked.connect(self.toggleRequested)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in TOGGLE_KEYS and not event.isAutoRepeat():
            index = self.currentIndex()
            if index.isValid():
                self.toggleRequested.emit(str(index.data(ItemRole.ID)))
                event.accept()
                return
        super().keyPressEvent(event)
