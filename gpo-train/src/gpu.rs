//! The wgpu (GPU) backend: whether it can run on this machine.
//!
//! burn-wgpu panics deep inside its first tensor operation when no graphics adapter exists. This
//! asks wgpu the same question burn will ask (the same graphics API, the same adapter request) and
//! returns the answer instead, so that callers can report it or skip.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use burn_wgpu::graphics::{AutoGraphicsApi, GraphicsApi};

/// The backend type `gpo run --backend wgpu` trains on.
pub type Wgpu = burn_wgpu::Wgpu<f32, i32>;

/// Why burn-wgpu has no adapter to run on.
#[derive(Debug, thiserror::Error)]
pub enum NoAdapter {
    /// wgpu refused the request (for example no Vulkan driver: install `mesa-vulkan-drivers
    /// libvulkan1` for lavapipe on a CPU).
    #[error("{backend:?}: {error}")]
    Refused {
        /// The graphics API asked.
        backend: wgpu::Backend,
        /// wgpu's reason.
        error: wgpu::RequestAdapterError,
    },
    /// The request did not finish.
    #[error("{0:?}: the adapter request did not finish within a minute")]
    Timeout(wgpu::Backend),
}

/// The adapter burn-wgpu's default device will use, described in one line, or why there is none.
pub fn wgpu_adapter() -> Result<String, NoAdapter> {
    let backend = <AutoGraphicsApi as GraphicsApi>::backend();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: backend.into(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let request = instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
    });
    match block_on(request, Duration::from_secs(60)) {
        Some(Ok(adapter)) => {
            let info = adapter.get_info();
            Ok(format!(
                "{} ({:?}, {:?}, {} {})",
                info.name, info.backend, info.device_type, info.driver, info.driver_info
            ))
        }
        Some(Err(error)) => Err(NoAdapter::Refused { backend, error }),
        None => Err(NoAdapter::Timeout(backend)),
    }
}

/// Polls `future` to completion on this thread; `None` after `limit`. Native wgpu resolves its
/// requests immediately, so this needs no executor.
fn block_on<F: Future>(future: F, limit: Duration) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    let started = Instant::now();
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
