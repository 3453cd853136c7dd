//! Which simulcast layer of one video track a receiver gets, and when it may change.
//!
//! A publisher sends up to three spatial layers (RIDs); a receiver gets one of them on a single
//! outgoing stream. A switch happens only at a keyframe of the new layer (anything else would
//! not decode); until one arrives the old layer keeps flowing, so the picture never stops.

/// A layer index: 0 is the lowest resolution.
pub(crate) type Layer = u8;

/// What to do with one incoming packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerDecision {
    /// Forward it on the current mapping.
    Forward,
    /// This keyframe starts the new layer: rebase the stream, then forward.
    SwitchAndForward,
    /// Not for this receiver.
    Drop,
}

/// Layer state of one (publisher video track → receiver) pair.
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerSelector {
    /// The layer being forwarded, if any.
    current: Option<Layer>,
    /// The layer wanted; `None` pauses the track.
    target: Option<Layer>,
}

impl LayerSelector {
    /// Sets the wanted layer (`None`: pause). Takes effect at the next keyframe of that layer;
    /// a pause takes effect at once.
    pub(crate) fn set_target(&mut self, target: Option<Layer>) {
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
    }

    /// The wanted layer.
    pub(crate) fn target(&self) -> Option<Layer> {
        self.target
    }

    /// The layer being forwarded.
    pub(crate) fn current(&self) -> Option<Layer> {
        self.current
    }

    /// Whether a keyframe of the target layer is awaited (and should be asked for).
    pub(crate) fn awaiting_keyframe(&self) -> Option<Layer> {
        match (self.current, self.target) {
            (c, Some(t)) if c != Some(t) => Some(t),
            _ => None,
        }
    }

    /// Decides for a packet of `layer`, `keyframe` if it starts a keyframe.
    pub(crate) fn on_packet(&mut self, layer: Layer, keyframe: bool) -> LayerDecision {
        let Some(target) = self.target else {
            return LayerDecision::Drop;
        };
        if layer == target && self.current != Some(target) && keyframe {
            self.current = Some(target);
            return LayerDecision::SwitchAndForward;
        }
        if Some(layer) == self.current {
            LayerDecision::Forward
        } else {
            LayerDecision::Drop
        }
    }
}

/// The layer to want for a picture shown `height` pixels high, given the layers' heights
/// (lowest first; `None` where not yet known): the smallest layer at least that high, or the
/// highest there is.
pub(crate) fn layer_for_height(height: u32, heights: &[Option<u16>]) -> Layer {
    let count = heights.len().max(1);
    let top = (count - 1) as Layer;
    // Unknown heights are assumed to halve from a 720p top layer.
    let height_of = |i: usize| -> u32 {
        heights
            .get(i)
            .copied()
            .flatten()
            .map_or(720 >> (count - 1 - i), u32::from)
    };
    (0..count)
        .find(|i| height_of(*i) >= height)
        .map_or(top, |i| i as Layer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use LayerDecision::*;

    #[test]
    fn nothing_flows_until_a_keyframe_of_the_target() {
        let mut s = LayerSelector::default();
        s.set_target(Some(1));
        assert_eq!(s.awaiting_keyframe(), Some(1));
        assert_eq!(s.on_packet(1, false), Drop);
        assert_eq!(s.on_packet(0, true), Drop);
        assert_eq!(s.on_packet(1, true), SwitchAndForward);
        assert_eq!(s.on_packet(1, false), Forward);
        assert_eq!(s.on_packet(2, true), Drop);
        assert_eq!(s.awaiting_keyframe(), None);
    }

    #[test]
    fn the_old_layer_flows_until_the_new_one_has_a_keyframe() {
        let mut s = LayerSelector::default();
        s.set_target(Some(0));
        assert_eq!(s.on_packet(0, true), SwitchAndForward);
        s.set_target(Some(2));
        assert_eq!(s.on_packet(0, false), Forward);
        assert_eq!(s.on_packet(2, false), Drop);
        assert_eq!(s.current(), Some(0));
        assert_eq!(s.on_packet(2, true), SwitchAndForward);
        assert_eq!(s.on_packet(0, false), Drop);
        assert_eq!(s.current(), Some(2));
    }

    #[test]
    fn a_pause_stops_at_once_and_a_resume_waits_for_a_keyframe() {
        let mut s = LayerSelector::default();
        s.set_target(Some(0));
        s.on_packet(0, true);
        s.set_target(None);
        assert_eq!(s.on_packet(0, false), Drop);
        assert_eq!(s.on_packet(0, true), Drop);
        s.set_target(Some(0));
        assert_eq!(s.on_packet(0, false), Drop);
        assert_eq!(s.on_packet(0, true), SwitchAndForward);
    }

    #[test]
    fn layers_are_chosen_by_the_height_shown() {
        let known = [Some(180), Some(360), Some(720)];
        assert_eq!(layer_for_height(90, &known), 0);
        assert_eq!(layer_for_height(180, &known), 0);
        assert_eq!(layer_for_height(181, &known), 1);
        assert_eq!(layer_for_height(720, &known), 2);
        assert_eq!(layer_for_height(1080, &known), 2);
        // Unknown heights: assumed 180/360/720, or 360/720 for two layers.
        assert_eq!(layer_for_height(300, &[None, None, None]), 1);
        assert_eq!(layer_for_height(300, &[None, None]), 0);
        assert_eq!(layer_for_height(300, &[None]), 0);
        assert_eq!(layer_for_height(300, &[]), 0);
    }
}
